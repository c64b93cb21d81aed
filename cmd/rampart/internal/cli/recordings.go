package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ssh/rampart/client"
)

// recordings export: a session's recording through the HTTPS API, for an
// auditor who has a service token but no shell on the cluster.

// TokenEnv is the environment variable the API commands read a service
// token from (a flag value would show in ps and shell history).
const TokenEnv = "RAMPART_TOKEN"

// exportTimeout bounds one export, the download included.
const exportTimeout = 10 * time.Minute

type exportOptions struct {
	format, output, tokenFile, api, pin string
}

func (a *app) recordingsCmd() *cobra.Command {
	group := &cobra.Command{
		Use:   "recordings",
		Short: "Session recordings, through the cluster's HTTPS API (a service token)",
		Args:  cobra.NoArgs,
	}
	var o exportOptions
	export := &cobra.Command{
		Use:   "export SESSION-ID",
		Short: "Write a session's recording as asciicast v2 or as one JSON document",
		Long: `export downloads a session's recording with a service token of scope auditor or admin
(GET /v1/sessions/{id}/recording), checks it against the SHA-256 the cluster holds, and writes it
to stdout or -o FILE.

  --format asciicast   the asciicast v2 file as the cluster keeps it (asciinema play FILE)
  --format json        one JSON document: session, sha256, node, partial, the header and the events

The token is read from $` + TokenEnv + ` or --token-file, never from a flag. The cluster's address and
CA fingerprint are those rampart setup stored, or --api and --ca-fingerprint.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("export takes one SESSION-ID (see %s --help)", c.CommandPath())}
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if o.format != "asciicast" && o.format != "json" {
				return usageError{fmt.Errorf("--format %q: use asciicast or json", o.format)}
			}
			return a.exportRecording(c.Context(), args[0], o)
		},
	}
	export.Flags().StringVar(&o.format, "format", "asciicast", "asciicast or json")
	export.Flags().StringVarP(&o.output, "output", "o", "", "write to FILE instead of stdout (only once the recording checks out)")
	export.Flags().StringVar(&o.tokenFile, "token-file", "", "read the service token from FILE (default: $"+TokenEnv+")")
	export.Flags().StringVar(&o.api, "api", "", "the cluster's API address, host:port (default: the one rampart setup stored)")
	export.Flags().StringVar(&o.pin, "ca-fingerprint", "", "the cluster CA's fingerprint, sha256:<hex> (default: the one rampart setup stored)")
	_ = export.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"asciicast", "json"}, cobra.ShellCompDirectiveNoFileComp))
	group.AddCommand(export)
	return group
}

// serviceToken reads the token from file, or else from $RAMPART_TOKEN.
func serviceToken(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
		return "", fmt.Errorf("--token-file %s is empty", file)
	}
	if tok := strings.TrimSpace(os.Getenv(TokenEnv)); tok != "" {
		return tok, nil
	}
	return "", usageError{fmt.Errorf("no service token: set $%s or pass --token-file FILE (a token of scope auditor or admin)", TokenEnv)}
}

// apiTarget is the API address and CA pin: the flags, else setup's.
func apiTarget(apiFlag, pinFlag string) (string, string, error) {
	if apiFlag != "" && pinFlag != "" {
		return apiFlag, pinFlag, nil
	}
	e, err := newEnv()
	if err != nil {
		return "", "", err
	}
	cfg, err := e.load()
	if errors.Is(err, errNoSetup) {
		return "", "", usageError{errors.New("no cluster given: pass --api HOST:PORT and --ca-fingerprint sha256:..., or run rampart setup first")}
	}
	if err != nil {
		return "", "", err
	}
	switch {
	case apiFlag == "":
		apiFlag = cfg.API
	case apiFlag != cfg.API:
		return "", "", usageError{fmt.Errorf("--api %s is not the cluster rampart setup trusts (%s): pass its --ca-fingerprint too", apiFlag, cfg.API)}
	}
	if pinFlag == "" {
		pinFlag = cfg.Pin
	}
	return apiFlag, pinFlag, nil
}

func (a *app) exportRecording(ctx context.Context, id string, o exportOptions) error {
	tok, err := serviceToken(o.tokenFile)
	if err != nil {
		return err
	}
	addr, pin, err := apiTarget(o.api, o.pin)
	if err != nil {
		return err
	}
	cl, err := client.New([]string{addr}, client.WithPin(pin), client.WithToken(tok), client.WithTimeout(exportTimeout))
	if err != nil {
		return usageError{fmt.Errorf("--ca-fingerprint %q is not a cluster CA fingerprint (sha256: and 64 hex digits)", pin)}
	}
	defer cl.CloseIdleConnections()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, exportTimeout)
	defer cancel()
	rec, err := cl.SessionRecording(ctx, id)
	if err != nil {
		return exportRefusal(id, addr, err)
	}
	defer rec.Body.Close()
	if rec.Partial {
		fmt.Fprintf(a.err, "rampart: warning: the recording of %s ends where the node carrying the session was lost\n", id)
	}
	return writeChecked(a.out, o.output, func(w io.Writer) error {
		h := sha256.New()
		body := io.TeeReader(rec.Body, h)
		var err error
		if o.format == "json" {
			err = castToJSON(w, body, id, rec)
		} else {
			_, err = io.Copy(w, body)
		}
		if err != nil {
			return err
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != rec.SHA256 {
			return fmt.Errorf("the recording received (SHA-256 %s) is not the one the cluster holds (%s): discard the output", got, rec.SHA256)
		}
		return nil
	})
}

// exportRefusal says why the API refused, in the auditor's terms.
func exportRefusal(id, addr string, err error) error {
	var ce *client.Error
	switch {
	case errors.Is(err, client.ErrPinMismatch):
		return fmt.Errorf("the server at %s does not present the cluster CA of --ca-fingerprint: check the fingerprint, and do not go on if it was right (someone may be in the way)", addr)
	case !errors.As(err, &ce):
		return fmt.Errorf("reach the cluster at %s: %w", addr, err)
	case ce.Status == http.StatusUnauthorized:
		return errors.New("the cluster refused the service token (unknown, expired or revoked)")
	case ce.Code == "insufficient_scope":
		return errors.New("the service token cannot read recordings: use a token of scope auditor or admin (an administrator makes one with `service-tokens create NAME --scope auditor`)")
	case ce.Status == http.StatusNotFound:
		return fmt.Errorf("no recording of session %s: %s", id, ce.Message)
	}
	return fmt.Errorf("export the recording of %s: %w", id, err)
}

// writeChecked runs write into stdout, or into a temporary file beside
// path renamed to path only once write succeeds.
func writeChecked(stdout io.Writer, path string, write func(io.Writer) error) error {
	if path == "" || path == "-" {
		bw := bufio.NewWriter(stdout)
		if err := write(bw); err != nil {
			_ = bw.Flush()
			return err
		}
		return bw.Flush()
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("-o %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // after the rename, there is nothing to remove
	bw := bufio.NewWriter(f)
	if err := write(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("-o %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("-o %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("-o %s: %w", path, err)
	}
	return nil
}

// castToJSON writes an asciicast v2 stream as one JSON document, the
// events one a line:
//
//	{"session":…,"sha256":…,"node":…,"partial":false,"header":{…},"events":[
//	[0.1,"o","…"],
//	…
//	]}
func castToJSON(w io.Writer, cast io.Reader, id string, rec *client.Recording) error {
	sc := bufio.NewScanner(cast)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return fmt.Errorf("read the recording: %w", err)
		}
		return errors.New("the recording is empty (no asciicast header)")
	}
	var header bytes.Buffer
	if err := json.Compact(&header, sc.Bytes()); err != nil || header.Len() == 0 || header.Bytes()[0] != '{' {
		return errors.New("the recording does not start with an asciicast header")
	}
	meta, err := json.Marshal(struct {
		Session string `json:"session"`
		SHA256  string `json:"sha256"`
		Node    string `json:"node,omitempty"`
		Partial bool   `json:"partial"`
	}{id, rec.SHA256, rec.Node, rec.Partial})
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "%s,\"header\":%s,\"events\":[", meta[:len(meta)-1], header.Bytes()); err != nil {
		return err
	}
	sep := "\n"
	for line := 2; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var ev bytes.Buffer
		if err := json.Compact(&ev, sc.Bytes()); err != nil || ev.Bytes()[0] != '[' {
			if rec.Partial {
				// A copy cut off with its node ends mid-event: keep what
				// is whole, and read the rest for the checksum.
				if _, err := io.Copy(io.Discard, cast); err != nil {
					return fmt.Errorf("read the recording: %w", err)
				}
				break
			}
			return fmt.Errorf("line %d of the recording is not an asciicast event", line)
		}
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		if _, err := w.Write(ev.Bytes()); err != nil {
			return err
		}
		sep = ",\n"
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read the recording: %w", err)
	}
	_, err = io.WriteString(w, "\n]}\n")
	return err
}
