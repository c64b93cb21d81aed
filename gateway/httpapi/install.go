package httpapi

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/rampart-ssh/rampart/api"
)

// installTemplate is the agent installer served at GET /install.sh.
//
//go:embed install.sh.tmpl
var installTemplate string

// installScript is the rendered installer; it depends only on constants.
var installScript = sync.OnceValues(func() ([]byte, error) {
	t, err := template.New("install.sh").Option("missingkey=error").Parse(installTemplate)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	err = t.Execute(&b, map[string]string{
		"Version":              api.Version,
		"DisableAutostartFile": api.DisableAutostartFile,
		"SHA256Header":         api.AgentSHA256Header,
	})
	return b.Bytes(), err
})

// agentPlatform is what a binary built for one GOARCH looks like as ELF.
type agentPlatform struct {
	machine elf.Machine
	class   elf.Class
	data    elf.Data
}

// agentArches are the architectures an agent binary may be asked for (the
// allow-list that keeps the query out of file names), by GOARCH name.
var agentArches = map[string]agentPlatform{
	"amd64":   {elf.EM_X86_64, elf.ELFCLASS64, elf.ELFDATA2LSB},
	"arm64":   {elf.EM_AARCH64, elf.ELFCLASS64, elf.ELFDATA2LSB},
	"arm":     {elf.EM_ARM, elf.ELFCLASS32, elf.ELFDATA2LSB},
	"386":     {elf.EM_386, elf.ELFCLASS32, elf.ELFDATA2LSB},
	"riscv64": {elf.EM_RISCV, elf.ELFCLASS64, elf.ELFDATA2LSB},
	"ppc64le": {elf.EM_PPC64, elf.ELFCLASS64, elf.ELFDATA2LSB},
	"s390x":   {elf.EM_S390, elf.ELFCLASS64, elf.ELFDATA2MSB},
}

// agentBinaryName is the file serving every OS and architecture it names;
// plainAgentBinary (as `go build` names it) serves only this node's own.
const (
	agentBinaryPrefix = "rampart-agent-"
	plainAgentBinary  = "rampart-agent"
)

// agentBinaries finds and fingerprints the agent binaries in one directory.
type agentBinaries struct {
	dir string
	mu  sync.Mutex
	// sums caches each file's SHA-256, keyed by path, valid while its size
	// and modification time stay the same.
	sums map[string]binarySum
}

type binarySum struct {
	size int64
	mod  time.Time
	hex  string
}

// newAgentBinaries serves binaries from dir, or from the directory of the
// running executable when dir is empty (where `make build` puts both).
func newAgentBinaries(dir string) *agentBinaries {
	if dir == "" {
		if exe, err := os.Executable(); err == nil {
			if real, err := filepath.EvalSymlinks(exe); err == nil {
				exe = real
			}
			dir = filepath.Dir(exe)
		}
	}
	return &agentBinaries{dir: dir, sums: map[string]binarySum{}}
}

// SetAgentBinaryDir names the directory GET /v1/agents/binary serves agent
// binaries from; empty means the directory of the running rampartd.
func (s *Server) SetAgentBinaryDir(dir string) { s.agentBins = newAgentBinaries(dir) }

// Why a binary cannot be served; both are a 404 to the client.
var (
	// errNoAgentBinary: the node has no binary for the platform asked for.
	errNoAgentBinary = errors.New("no agent binary")
	// errUnusableAgentBinary: a file has the right name but is not an
	// executable for that platform (the operator's mistake, logged).
	errUnusableAgentBinary = errors.New("unusable agent binary")
)

// open returns the binary for goos/arch, opened, with its SHA-256.
func (b *agentBinaries) open(goos, arch string) (*os.File, fs.FileInfo, string, error) {
	want, ok := agentArches[arch]
	if goos != "linux" || !ok || b.dir == "" {
		return nil, nil, "", errNoAgentBinary
	}
	candidates := []string{filepath.Join(b.dir, agentBinaryPrefix+goos+"-"+arch)}
	if goos == runtime.GOOS && arch == runtime.GOARCH {
		candidates = append(candidates, filepath.Join(b.dir, plainAgentBinary))
	}
	var errs []error
	for _, path := range candidates {
		f, fi, sum, err := b.openChecked(path, want)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return f, fi, sum, nil
	}
	if len(errs) > 0 {
		return nil, nil, "", fmt.Errorf("%w: %w", errUnusableAgentBinary, errors.Join(errs...))
	}
	return nil, nil, "", errNoAgentBinary
}

// openChecked opens path if it is a regular file holding an ELF executable
// for want, and fingerprints the open file (so the sum is of what is served).
func (b *agentBinaries) openChecked(path string, want agentPlatform) (*os.File, fs.FileInfo, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, "", err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err == nil {
		err = checkELF(f, want)
		if err != nil {
			err = fmt.Errorf("%s: %w", path, err)
		}
	}
	var sum string
	if err == nil {
		sum, err = b.sum(path, f, fi)
	}
	if err != nil {
		f.Close()
		return nil, nil, "", err
	}
	return f, fi, sum, nil
}

func checkELF(f *os.File, want agentPlatform) error {
	e, err := elf.NewFile(f)
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	if e.Machine != want.machine || e.Class != want.class || e.Data != want.data || e.Type != elf.ET_EXEC && e.Type != elf.ET_DYN {
		return fmt.Errorf("built for %s/%s/%s, not %s/%s/%s", e.Machine, e.Class, e.Data, want.machine, want.class, want.data)
	}
	return nil
}

// sum returns f's hex SHA-256, from the cache while size and mtime match.
func (b *agentBinaries) sum(path string, f *os.File, fi fs.FileInfo) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.sums[path]; ok && c.size == fi.Size() && c.mod.Equal(fi.ModTime()) {
		return c.hex, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, fi.Size())); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	b.sums[path] = binarySum{size: fi.Size(), mod: fi.ModTime(), hex: sum}
	return sum, nil
}

// available lists the architectures this node has a linux binary for.
func (b *agentBinaries) available() []string {
	var out []string
	for arch := range agentArches {
		if f, _, _, err := b.open("linux", arch); err == nil {
			f.Close()
			out = append(out, arch)
		}
	}
	slices.Sort(out)
	return out
}

// installScriptHandler serves GET /install.sh: the agent installer (see
// install.sh.tmpl). It is public; what it downloads is pinned by the token.
func (s *Server) installScriptHandler(w http.ResponseWriter, r *http.Request) {
	body, err := installScript()
	if err != nil {
		s.writeError(w, r, fmt.Errorf("render install.sh: %w", err))
		return
	}
	w.Header().Set("Content-Type", "text/x-shellscript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// agentBinary serves GET /v1/agents/binary?os=linux&arch=amd64 with the
// binary's SHA-256 in AgentSHA256Header. It is public: the binary is no
// secret, and the installer fetches it over TLS verified against the cluster
// CA the token pins.
func (s *Server) agentBinary(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	goos, arch := q.Get("os"), q.Get("arch")
	if goos == "" {
		goos = "linux"
	}
	if arch == "" {
		s.writeError(w, r, Errorf(http.StatusBadRequest, "arch is required (amd64, arm64, ...)"))
		return
	}
	if goos != "linux" {
		s.writeError(w, r, Errorf(http.StatusNotFound, "no agent binary for os %q: the agent runs on linux only", clip(goos)))
		return
	}
	if _, ok := agentArches[arch]; !ok {
		s.writeError(w, r, Errorf(http.StatusNotFound, "no agent binary for linux/%s: not a supported architecture (%s)", clip(arch), strings.Join(sortedKeys(agentArches), ", ")))
		return
	}
	bins := s.agentBins
	f, fi, sum, err := bins.open(goos, arch)
	if err != nil {
		if errors.Is(err, errUnusableAgentBinary) {
			s.logger.Warn("agent binary unusable", "os", goos, "arch", arch, "dir", bins.dir, "err", err)
		} else {
			s.logger.Info("no agent binary for the platform asked for", "os", goos, "arch", arch, "dir", bins.dir)
		}
		have := bins.available()
		msg := "this node has no agent binary for linux/" + arch
		if len(have) > 0 {
			msg += " (it has: " + strings.Join(have, ", ") + ")"
		}
		s.writeError(w, r, Errorf(http.StatusNotFound, "%s; put rampart-agent-linux-%s beside rampartd or in agents.binary_dir", msg, arch))
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="rampart-agent"`)
	w.Header().Set(api.AgentSHA256Header, sum)
	s.holdFor(w, downloadHold)
	http.ServeContent(w, r, "", fi.ModTime(), io.NewSectionReader(f, 0, fi.Size()))
}

// tlsCAHandler serves GET /v1/ca/tls: the cluster CA certificate (PEM). It is
// public: a client checks it against the pin its token carries.
func (s *Server) tlsCAHandler(w http.ResponseWriter, r *http.Request) {
	_, meta, err := s.store.State().Meta(nil)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if meta == nil || meta.TLSCACert == "" {
		s.writeError(w, r, Errorf(http.StatusServiceUnavailable, "the cluster is not initialised yet"))
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = io.WriteString(w, meta.TLSCACert)
}

// clip shortens a query value echoed in an error message.
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
