package enroll

// Cloud auto-enrollment: what a node keeps between enrollments (its GCP
// verifier, the parsed AWS certificate bundle), and the checks that tie an
// enrollment's claims to the cloud identity it carries.
//
// The signed identity proves which instance sent the request, but anything
// on the instance that can reach the metadata service can read it. So the
// claims an enrollment makes beyond "I am instance X" are bounded: the
// address the bastion dials must be the instance's own (AWS, where the
// document names it), sshd must listen on a privileged port, and a
// re-enrollment keeps the server's names and address.

import (
	"crypto/x509"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rampart-ssh/rampart/api"
	"github.com/rampart-ssh/rampart/gateway/cloudid"
	"github.com/rampart-ssh/rampart/gateway/fault"
	"github.com/rampart-ssh/rampart/raftstore"
)

// privilegedPorts: ports below this one only root (or CAP_NET_BIND_SERVICE)
// can listen on.
const privilegedPorts = 1024

// cloudVerifiers keeps the node's cloud identity verifiers, so that an
// enrollment request (which anyone can send) costs no fetch from the GCP
// issuer beyond what the verifier's own bounds allow, and no parse of an
// unchanged AWS bundle. The zero value is ready; it is safe for concurrent
// use.
type cloudVerifiers struct {
	mu sync.Mutex
	// gcp was built from gcpCfg; a different configuration builds another.
	gcp    *cloudid.GCPVerifier
	gcpCfg GCP
	// awsCerts were parsed from the file awsPath as it was when its
	// modification time and size were awsStamp.
	awsPath  string
	awsStamp fileStamp
	awsCerts []*x509.Certificate
}

// fileStamp is what tells a changed file from the one read before.
type fileStamp struct {
	modTime time.Time
	size    int64
}

// gcpVerifier returns the verifier for cfg, the same one for as long as cfg
// is the same (a node's configuration does not change while it runs; the
// comparison only makes the cache impossible to get wrong).
func (cv *cloudVerifiers) gcpVerifier(cfg GCP, now func() time.Time) *cloudid.GCPVerifier {
	cv.mu.Lock()
	defer cv.mu.Unlock()
	if cv.gcp != nil && cv.gcpCfg.Issuer == cfg.Issuer && cv.gcpCfg.Audience == cfg.Audience &&
		cv.gcpCfg.MaxAge == cfg.MaxAge && maps.Equal(cv.gcpCfg.Projects, cfg.Projects) {
		return cv.gcp
	}
	cv.gcpCfg = cfg
	cv.gcpCfg.Projects = maps.Clone(cfg.Projects)
	cv.gcp = &cloudid.GCPVerifier{Issuer: cfg.Issuer, Audience: cfg.Audience, Projects: cv.gcpCfg.Projects, MaxAge: cfg.MaxAge, Now: now}
	return cv.gcp
}

// awsCertificates returns the certificates of the bundle at path, parsed
// again only when the file's modification time or size changed: an
// operator adding a region's certificate needs no restart.
func (cv *cloudVerifiers) awsCertificates(path string) ([]*x509.Certificate, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	stamp := fileStamp{modTime: fi.ModTime(), size: fi.Size()}
	cv.mu.Lock()
	defer cv.mu.Unlock()
	if cv.awsCerts != nil && cv.awsPath == path && cv.awsStamp == stamp {
		return cv.awsCerts, nil
	}
	certs, err := cloudid.ReadAWSCertificates(path)
	if err != nil {
		return nil, err
	}
	// The stamp read before the file: a write racing the read is seen as a
	// change at the next enrollment.
	cv.awsPath, cv.awsStamp, cv.awsCerts = path, stamp, certs
	return certs, nil
}

// checkCloudSSHPort refuses a cloud enrollment whose sshd would listen on an
// unprivileged port: any process on the instance can read its identity, but
// only root can serve sshd below 1024, so a process that enrolls the
// instance cannot also be the sshd the bastion reaches.
func checkCloudSSHPort(req *api.EnrollRequest) error {
	port := req.SSHPort
	if port == 0 {
		port = raftstore.DefaultSSHPort
	}
	if port < 1 || port > 65535 {
		return fault.Errorf(http.StatusBadRequest, "ssh_port %d is outside 1-65535", port)
	}
	if port >= privilegedPorts {
		return fault.Errorf(http.StatusForbidden, "ssh_port %d: a server that enrolls with its cloud identity must run sshd on a "+
			"privileged port (below %d), which only root can listen on; enroll it with a token to use port %d", port, privilegedPorts, port)
	}
	return nil
}

// checkAWSAddr refuses an AWS enrollment whose addr is not the instance's
// private IP as its signed identity document gives it: otherwise whatever
// read the document could point the bastion at another machine.
func checkAWSAddr(req *api.EnrollRequest, id *cloudid.AWSIdentity) error {
	if id.PrivateIP == "" {
		return fault.Errorf(http.StatusForbidden, "the identity document of AWS instance %s names no privateIp to check addr %s against: enroll it with a token",
			id.InstanceID, req.Addr)
	}
	if !sameIP(req.Addr, id.PrivateIP) {
		return fault.Errorf(http.StatusForbidden, "addr %s is not the private IP of AWS instance %s (%s, from its signed identity document): "+
			"set addr in the agent's configuration to %s", req.Addr, id.InstanceID, id.PrivateIP, id.PrivateIP)
	}
	return nil
}

// checkReenroll refuses a re-enrollment of an instance that would change
// the server's name, alt names or address: a re-enrollment only gives the
// same server a new credential and host keys, so that something that read
// the instance's identity cannot take over the server's record to receive
// sessions under another name or at another address.
func checkReenroll(req *api.EnrollRequest, srv *raftstore.Server, instanceID string) error {
	refuse := func(what, was, asked, key string) error {
		if was == "" {
			was = "none"
		}
		return fault.Errorf(http.StatusForbidden, "instance %s is enrolled as server %s (%s): enrolling it again keeps the server's %s (%s), "+
			"and this enrollment asks for %s; set %s in the agent's configuration back, or delete the server (servers delete %s) to enroll the instance anew",
			instanceID, srv.Name, srv.ID, what, was, asked, key, srv.Name)
	}
	if name := strings.ToLower(req.Name); name != srv.Name {
		return refuse("name", srv.Name, fmt.Sprintf("%q", req.Name), "name")
	}
	if !sameIP(req.Addr, srv.Addr) {
		return refuse("address", srv.Addr, req.Addr, "addr")
	}
	if alts := normalAltNames(srv.Name, req.AltNames); !slices.Equal(alts, normalAltNames(srv.Name, srv.AltNames)) {
		return refuse("alt names", strings.Join(srv.AltNames, " "), fmt.Sprintf("%q", strings.Join(alts, " ")), "alt_names")
	}
	return nil
}

// sameIP reports whether a and b are the same IP address, however written
// (an IPv4-mapped IPv6 address is its IPv4 address). Anything that is not
// an IP address is compared as a lower-case name.
func sameIP(a, b string) bool {
	x, errA := netip.ParseAddr(a)
	y, errB := netip.ParseAddr(b)
	if errA != nil || errB != nil {
		return errA != nil && errB != nil && strings.EqualFold(a, b)
	}
	return x.Unmap() == y.Unmap()
}

// normalAltNames is alt names as the store keeps them: canonical, sorted,
// without duplicates or the server's name.
func normalAltNames(name string, alts []string) []string {
	out := []string{}
	for _, a := range alts {
		if ip, err := netip.ParseAddr(a); err == nil {
			a = ip.String()
		} else {
			a = strings.ToLower(a)
		}
		if a != name {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
