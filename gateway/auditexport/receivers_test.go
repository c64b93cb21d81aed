package auditexport

// Real receivers for the sinks: an RFC 5424 syslog server over TCP and TLS,
// a Splunk HEC endpoint and a webhook, each validating what it is sent and
// keeping the records by sequence number.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// received keeps what a receiver took: every record in arrival order, and
// the problems it found with the requests.
type received struct {
	mu       sync.Mutex
	records  []Record
	problems []string
	// fail, while set, makes HTTP receivers answer 503.
	fail bool
}

func (r *received) add(recs ...Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, recs...)
}

func (r *received) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func (r *received) setFail(v bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = v
}

func (r *received) failing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fail
}

// snapshot returns the records and problems so far.
func (r *received) snapshot() ([]Record, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.records...), append([]string(nil), r.problems...)
}

// testCert makes a self-signed certificate for 127.0.0.1 and writes its PEM
// to a file, returned as the CA file a sink trusts.
func testCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "receiver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caFile
}

// syslogMsgRE is RFC 5424's SYSLOG-MSG up to the structured data:
// <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP.
var syslogMsgRE = regexp.MustCompile(`^<([0-9]{1,3})>1 (\S+) (\S{1,255}) (\S{1,48}) (\S{1,128}) (\S{1,32}) `)

// sdParamRE is one SD-PARAM: name="value" with \" \\ \] escaped.
var sdParamRE = regexp.MustCompile(`^ ([^ =\]"]{1,32})="((?:[^"\\\]]|\\["\\\]])*)"`)

// parseRFC5424 parses one message as a syslog receiver would and returns
// its parts; it checks the grammar of RFC 5424 §6 for what the sink sends.
func parseRFC5424(msg []byte) (pri int, ts time.Time, host, app, msgid string, sd map[string]map[string]string, body []byte, err error) {
	m := syslogMsgRE.FindSubmatch(msg)
	if m == nil {
		return 0, ts, "", "", "", nil, nil, errors.New("header does not match RFC 5424")
	}
	pri, _ = strconv.Atoi(string(m[1]))
	if pri > 191 {
		return 0, ts, "", "", "", nil, nil, fmt.Errorf("PRI %d out of range", pri)
	}
	if ts, err = time.Parse(time.RFC3339Nano, string(m[2])); err != nil {
		return 0, ts, "", "", "", nil, nil, fmt.Errorf("timestamp: %w", err)
	}
	host, app, msgid = string(m[3]), string(m[4]), string(m[6])
	rest := msg[len(m[0]):]
	sd = map[string]map[string]string{}
	if bytes.HasPrefix(rest, []byte("- ")) {
		rest = rest[2:]
	} else {
		for len(rest) > 0 && rest[0] == '[' {
			end := bytes.IndexAny(rest, " ]")
			if end < 0 {
				return 0, ts, "", "", "", nil, nil, errors.New("SD-ELEMENT not closed")
			}
			id := string(rest[1:end])
			params := map[string]string{}
			rest = rest[end:]
			for len(rest) > 0 && rest[0] == ' ' {
				pm := sdParamRE.FindSubmatch(rest)
				if pm == nil {
					return 0, ts, "", "", "", nil, nil, fmt.Errorf("bad SD-PARAM in %s", id)
				}
				params[string(pm[1])] = strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\]`, `]`).Replace(string(pm[2]))
				rest = rest[len(pm[0]):]
			}
			if len(rest) == 0 || rest[0] != ']' {
				return 0, ts, "", "", "", nil, nil, fmt.Errorf("SD-ELEMENT %s not closed", id)
			}
			sd[id] = params
			rest = rest[1:]
		}
		if len(rest) > 0 {
			if rest[0] != ' ' {
				return 0, ts, "", "", "", nil, nil, errors.New("no SP before MSG")
			}
			rest = rest[1:]
		}
	}
	if !bytes.HasPrefix(rest, []byte("\xEF\xBB\xBF")) {
		return 0, ts, "", "", "", nil, nil, errors.New("MSG is not MSG-UTF8 (no BOM)")
	}
	return pri, ts, host, app, msgid, sd, rest[3:], nil
}

// startSyslog runs a syslog receiver on 127.0.0.1 (TLS when cert is set)
// framing by octet counting, or by newline.
func startSyslog(t *testing.T, cert *tls.Certificate, newline bool) (string, *received) {
	t.Helper()
	var ln net.Listener
	var err error
	if cert != nil {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12})
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	rec := &received{}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					msg, err := readFrame(br, newline)
					if err != nil {
						if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
							rec.problem("frame: %v", err)
						}
						return
					}
					rec.checkSyslog(msg)
				}
			})
		}
	})
	return ln.Addr().String(), rec
}

// readFrame reads one octet-counted frame (MSG-LEN SP SYSLOG-MSG, RFC 5425
// §4.3) or one line.
func readFrame(br *bufio.Reader, newline bool) ([]byte, error) {
	if newline {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return nil, err
		}
		return line[:len(line)-1], nil
	}
	lenStr, err := br.ReadString(' ')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSuffix(lenStr, " "))
	if err != nil || n < 1 || lenStr[0] == '0' {
		return nil, fmt.Errorf("MSG-LEN %q is not a NONZERO-DIGIT *DIGIT", lenStr)
	}
	msg := make([]byte, n)
	_, err = io.ReadFull(br, msg)
	return msg, err
}

func (r *received) checkSyslog(msg []byte) {
	pri, ts, host, app, msgid, sd, body, err := parseRFC5424(msg)
	if err != nil {
		r.problem("%v: %q", err, msg)
		return
	}
	var rec Record
	if err := json.Unmarshal(body, &rec); err != nil {
		r.problem("MSG is not a record: %v", err)
		return
	}
	switch {
	case pri/8 != 13:
		r.problem("seq %d: facility %d, want 13", rec.Seq, pri/8)
	case host != "n1" || app != "rampart":
		r.problem("seq %d: host %q app %q", rec.Seq, host, app)
	case msgid != rec.Type:
		r.problem("seq %d: MSGID %q, want the type %q", rec.Seq, msgid, rec.Type)
	case !ts.Equal(rec.Time.Truncate(time.Microsecond)):
		r.problem("seq %d: TIMESTAMP %s, record time %s", rec.Seq, ts, rec.Time)
	case sd[sdID]["seq"] != strconv.FormatUint(rec.Seq, 10) || sd[sdID]["actor"] != rec.Actor:
		r.problem("seq %d: structured data %v", rec.Seq, sd)
	}
	r.add(rec)
}

// startHEC runs a Splunk HEC endpoint over TLS that takes only token.
func startHEC(t testing.TB, token string) (*httptest.Server, *received) {
	rec := &received{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch {
		case req.URL.Path != HECPath || req.Method != http.MethodPost:
			rec.problem("%s %s", req.Method, req.URL.Path)
			http.Error(w, `{"text":"Incorrect path","code":404}`, http.StatusNotFound)
			return
		case req.Header.Get("Authorization") != "Splunk "+token:
			rec.problem("authorization %q", req.Header.Get("Authorization"))
			http.Error(w, `{"text":"Invalid token","code":4}`, http.StatusForbidden)
			return
		case rec.failing():
			http.Error(w, `{"text":"Server is busy","code":9}`, http.StatusServiceUnavailable)
			return
		}
		// HEC takes several JSON objects one after the other.
		dec := json.NewDecoder(req.Body)
		dec.DisallowUnknownFields()
		var batch []Record
		for {
			var ev HECEvent
			err := dec.Decode(&ev)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil || ev.Time == 0 || ev.Event.Seq == 0 || ev.SourceType != "rampart:audit" || ev.Host == "" {
				rec.problem("bad HEC event %+v: %v", ev, err)
				http.Error(w, `{"text":"Invalid data format","code":6}`, http.StatusBadRequest)
				return
			}
			if d := time.Unix(0, int64(ev.Time*1e9)).Sub(ev.Event.Time); d > time.Millisecond || d < -time.Millisecond {
				rec.problem("seq %d: HEC time %f is not the event's %s", ev.Event.Seq, ev.Time, ev.Event.Time)
			}
			batch = append(batch, ev.Event)
		}
		if len(batch) == 0 {
			http.Error(w, `{"text":"No data","code":5}`, http.StatusBadRequest)
			return
		}
		rec.add(batch...)
		_, _ = io.WriteString(w, `{"text":"Success","code":0}`)
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

// startWebhook runs a webhook receiver over TLS that checks the HMAC with
// key and refuses a timestamp more than five minutes off.
func startWebhook(t *testing.T, key []byte) (*httptest.Server, *received) {
	rec := &received{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		ts := req.Header.Get(HeaderTimestamp)
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
			rec.problem("timestamp %q", ts)
			http.Error(w, "stale", http.StatusUnauthorized)
			return
		}
		if want := WebhookSignature(key, ts, body); !hmac.Equal([]byte(want), []byte(req.Header.Get(HeaderSignature))) {
			rec.problem("signature %q does not verify", req.Header.Get(HeaderSignature))
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if rec.failing() {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var b WebhookBody
		if err := json.Unmarshal(body, &b); err != nil || len(b.Events) == 0 {
			rec.problem("body: %v", err)
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		rec.add(b.Events...)
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

// caFileOf writes a TLS test server's certificate as a CA file.
func caFileOf(t *testing.T, srv *httptest.Server) string {
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// readJSONLines reads the records of the file sink's files, oldest file
// first.
func readJSONLines(t *testing.T, path string, files int) []Record {
	t.Helper()
	var out []Record
	for i := files; i >= 0; i-- {
		name := path
		if i > 0 {
			name = path + "." + strconv.Itoa(i)
		}
		b, err := os.ReadFile(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for line := range bytes.Lines(b) {
			var r Record
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatalf("%s: line %q: %v", name, line, err)
			}
			out = append(out, r)
		}
	}
	return out
}
