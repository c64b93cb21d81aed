package gateway

import (
	"testing"
	"time"

	"github.com/rampart-ssh/rampart/gateway/cloudid"
)

func TestAgentsGCPValidateMaxAge(t *testing.T) {
	cfg := AgentsGCP{Issuer: cloudid.GoogleIssuer, Audience: "https://bastion.example.com:8443", Projects: map[string]string{"acme-prod": "web"}, MaxAge: time.Hour}
	if errs := cfg.validate(); len(errs) != 0 {
		t.Fatalf("valid settings refused: %v", errs)
	}
	cfg.MaxAge = 10 * time.Second
	if errs := cfg.validate(); len(errs) != 1 || errs[0].Error() != "max_age 10s: must be at least 1m" {
		t.Fatalf("max_age 10s: %v", errs)
	}
}
