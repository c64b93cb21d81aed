package httpapi

import (
	"bufio"
	"errors"
	"io"
	"net/http"

	"github.com/rampart-ssh/rampart/api"
	rotation "github.com/rampart-ssh/rampart/gateway/authority"
	"github.com/rampart-ssh/rampart/gateway/control"
	"github.com/rampart-ssh/rampart/raftstore"
)

// CA key rotations, one step per request (control.RotateCA validates and
// audits each, as for the admin shell's `ca rotate`):
//
//	POST /v1/ca/host/rotation/{step}
//	POST /v1/ca/node-host/rotation/{step}
//	POST /v1/ca/user/{project}/rotation/{step}

// rotateCA answers a rotation step on kind's chain (a user CA's project is
// in the path). The API's request is the confirmation the shell asks for.
func (s *Server) rotateCA(kind raftstore.CAKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in api.CARotationRequest
		if err := readOptionalJSON(r, &in); err != nil {
			s.writeError(w, r, err)
			return
		}
		res, err := s.control.RotateCA(r.Context(), adminActor(r), control.CARotation{Kind: kind, Project: r.PathValue("project"),
			Step: rotation.Step(r.PathValue("step")), Algorithm: in.Algorithm}, nil)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, caRotationToAPI(res))
	}
}

func caRotationToAPI(res *control.CARotated) api.CARotation {
	key := func(r *raftstore.CARecord) *api.CAKey {
		if r == nil {
			return nil
		}
		k := caKeyToAPI(r)
		return &k
	}
	return api.CARotation{Kind: string(res.Kind), Project: res.Project, Step: string(res.Step), Phase: string(res.State.Phase),
		Active: key(res.State.Active), Waiting: key(res.State.Waiting), Previous: key(res.State.Previous)}
}

// readOptionalJSON reads r's body into v as readJSON does, and leaves v
// as it is when there is no body.
func readOptionalJSON(r *http.Request, v any) error {
	br := bufio.NewReader(r.Body)
	if _, err := br.Peek(1); errors.Is(err, io.EOF) {
		return nil
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{br, r.Body}
	return readJSON(r, v)
}
