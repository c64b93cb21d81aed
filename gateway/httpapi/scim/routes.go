package scim

// Routes are the requests the handler serves, as ServeMux patterns with
// the /scim prefix the API mounts it under. The library routes them all
// inside that one prefix; this list is what the API reports (Patterns) and
// what its OpenAPI document describes, and routes_test.go checks it against
// the resource types the handler announces.
var Routes = []string{
	"GET /scim/v2/Users",
	"POST /scim/v2/Users",
	"POST /scim/v2/Users/.search",
	"GET /scim/v2/Users/{id}",
	"PUT /scim/v2/Users/{id}",
	"PATCH /scim/v2/Users/{id}",
	"DELETE /scim/v2/Users/{id}",
	"GET /scim/v2/Groups",
	"POST /scim/v2/Groups",
	"POST /scim/v2/Groups/.search",
	"GET /scim/v2/Groups/{id}",
	"PUT /scim/v2/Groups/{id}",
	"PATCH /scim/v2/Groups/{id}",
	"DELETE /scim/v2/Groups/{id}",
	"GET /scim/v2/ServiceProviderConfig",
	"GET /scim/v2/ResourceTypes",
	"GET /scim/v2/ResourceTypes/{id}",
	"GET /scim/v2/Schemas",
	"GET /scim/v2/Schemas/{id}",
}

// Unserved are paths under /scim/v2 that the library answers only with a
// SCIM error, each with why it is not a route: they are not in the OpenAPI
// document.
var Unserved = map[string]string{
	"/scim/v2/":        "a query across every resource type: no root query handler is configured (the library answers 400 tooMany)",
	"/scim/v2/.search": "the same query by POST, refused the same way",
	"/scim/v2/Me":      "the authenticated subject's own resource: a provisioning token is no person (the library answers 501)",
}
