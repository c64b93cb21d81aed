package devidp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// userCodeConfig makes user codes like "BCDF-GHJK": eight letters from an
// alphabet without vowels (no words) or look-alikes, about 34 bits.
var userCodeConfig = op.UserCodeBase20

// deviceEntry is one device authorization. Guarded by storage.mu.
type deviceEntry struct {
	deviceCode string
	userCode   string // canonical: upper case, no dash
	clientID   string
	scopes     []string
	expires    time.Time
	polls      int

	approved bool
	denied   bool
	subject  string
	authTime time.Time
}

// pageError is an error whose text is fit for the person at the browser:
// what happened and what to do, without internals.
type pageError string

func (e pageError) Error() string { return string(e) }

// Errors the pages show.
const (
	errCodeUnknown pageError = "That code is not valid. Check it and try again."
	errCodeExpired pageError = "That code has expired. Start the sign-in again to get a new one."
	errCodeUsed    pageError = "That code has already been approved or denied."
)

// canonicalUserCode upper-cases a typed code and drops spaces and dashes, so
// "bcdf ghjk" and "BCDF-GHJK" are the same code. It returns "" for anything
// that cannot be a user code.
func canonicalUserCode(typed string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		switch {
		case r == '-' || r == ' ' || r == '\t':
		case strings.ContainsRune(userCodeConfig.CharSet, r):
			b.WriteRune(r)
		default:
			return ""
		}
	}
	if b.Len() != userCodeConfig.CharAmount {
		return ""
	}
	return b.String()
}

// displayUserCode puts the dashes back: "BCDFGHJK" → "BCDF-GHJK".
func displayUserCode(canonical string) string {
	n := userCodeConfig.DashInterval
	var b strings.Builder
	for i, r := range canonical {
		if i > 0 && n > 0 && i%n == 0 {
			b.WriteByte('-')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// supportedScopes are the scopes the dev IdP knows; others are dropped.
var supportedScopes = []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, ScopeGroups, oidc.ScopeOfflineAccess}

// StoreDeviceAuthorization implements op.DeviceAuthorizationStorage.
//
// op does not retry on ErrDuplicateUserCode (it answers 500), so a
// collision, which needs two live codes out of 20^8, fails one request.
func (s *storage) StoreDeviceAuthorization(_ context.Context, clientID, deviceCode, userCode string, expires time.Time, scopes []string) error {
	canon := canonicalUserCode(userCode)
	if canon == "" {
		return fmt.Errorf("generated user code has an unexpected shape")
	}
	if _, ok := s.clients[clientID]; !ok {
		return oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	kept := slices.DeleteFunc(slices.Clone(scopes), func(sc string) bool {
		return !slices.Contains(supportedScopes, sc)
	})

	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneDeviceCodesLocked()
	if len(s.deviceCodes) >= maxDeviceCodes {
		return errors.New("too many pending sign-ins; try again later")
	}
	if _, dup := s.userCodes[canon]; dup {
		return op.ErrDuplicateUserCode
	}
	s.deviceCodes[deviceCode] = &deviceEntry{
		deviceCode: deviceCode,
		userCode:   canon,
		clientID:   clientID,
		scopes:     kept,
		expires:    expires,
	}
	s.userCodes[canon] = deviceCode
	return nil
}

// pruneDeviceCodesLocked forgets codes that expired a while ago.
func (s *storage) pruneDeviceCodesLocked() {
	cutoff := s.cfg.Now().Add(-expiredGrace)
	for dc, e := range s.deviceCodes {
		if e.expires.Before(cutoff) {
			s.removeLocked(dc, e)
		}
	}
}

func (s *storage) removeLocked(deviceCode string, e *deviceEntry) {
	delete(s.deviceCodes, deviceCode)
	if s.userCodes[e.userCode] == deviceCode {
		delete(s.userCodes, e.userCode)
	}
}

// errSlowDown asks op to answer slow_down. op maps a storage error that
// wraps context.DeadlineExceeded to slow_down: the library expects a
// long-polling storage to run into its 4s poll deadline when a client polls
// too eagerly, and this reuses that path.
var errSlowDown = fmt.Errorf("devidp: slow down: %w", context.DeadlineExceeded)

// GetDeviceAuthorizatonState implements op.DeviceAuthorizationStorage (the
// misspelling is op's). op turns the answer into the poll's response:
//
//   - an error wrapping context.DeadlineExceeded → slow_down
//   - any other error → access_denied (so an unknown or spent code is
//     access_denied, not invalid_grant)
//   - Denied → access_denied; Done → tokens; Expires in the past →
//     expired_token; otherwise authorization_pending.
//
// It returns a copy: op mutates the state (GetAudience appends the client
// ID), and concurrent polls must not race on a shared one.
func (s *storage) GetDeviceAuthorizatonState(ctx context.Context, clientID, deviceCode string) (*op.DeviceAuthorizationState, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.deviceCodes[deviceCode]
	if !ok || e.clientID != clientID {
		return nil, errors.New("unknown device code")
	}
	e.polls++
	if e.polls <= s.cfg.SlowDownPolls {
		return nil, errSlowDown
	}
	st := &op.DeviceAuthorizationState{
		ClientID: e.clientID,
		Audience: []string{e.clientID},
		Scopes:   slices.Clone(e.scopes),
		Expires:  e.expires,
		Done:     e.approved,
		Denied:   e.denied,
		Subject:  e.subject,
		AuthTime: e.authTime,
	}
	switch {
	case e.approved:
		// A device code buys one set of tokens.
		s.removeLocked(deviceCode, e)
		st.AMR = []string{"pwd"}
	case e.denied:
	case s.cfg.Now().After(e.expires):
		// Our clock (Config.Now) may run ahead of op's time.Now; a zero
		// Expires makes op agree that the code has expired.
		st.Expires = time.Time{}
	}
	return st, nil
}

// pollCount is how many token requests a device code has had, found by its
// user code; false when the code is unknown (or approved and spent).
func (s *storage) pollCount(canon string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.deviceCodes[s.userCodes[canon]]
	if canon == "" || !ok {
		return 0, false
	}
	return e.polls, true
}

// pendingCode is what the pages learn about a user code.
type pendingCode struct {
	userCode string // display form
	clientID string
	scopes   []string
}

// lookupUserCode finds a code that can still be approved or denied.
func (s *storage) lookupUserCode(canon string) (pendingCode, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.pendingLocked(canon)
	if err != nil {
		return pendingCode{}, err
	}
	return pendingCode{userCode: displayUserCode(e.userCode), clientID: e.clientID, scopes: slices.Clone(e.scopes)}, nil
}

func (s *storage) pendingLocked(canon string) (*deviceEntry, error) {
	e, ok := s.deviceCodes[s.userCodes[canon]]
	switch {
	case canon == "" || !ok:
		return nil, errCodeUnknown
	case e.approved || e.denied:
		return nil, errCodeUsed
	case s.cfg.Now().After(e.expires):
		return nil, errCodeExpired
	}
	return e, nil
}

// decide approves (for subject) or denies a pending code.
func (s *storage) decide(canon, subject string, approve bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.pendingLocked(canon)
	if err != nil {
		return err
	}
	if approve {
		e.approved = true
		e.subject = subject
		e.authTime = time.Now()
	} else {
		e.denied = true
	}
	return nil
}

// randomToken returns n random bytes, base64url without padding.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}
