// Package cli is the engineer's CLI, `rampart`: setup writes ~/.ssh for a
// cluster, login binds the person's key through the browser ahead of the
// first ssh, servers lists what they may reach, ssh and scp run OpenSSH
// with the right -J and login, status says what is ready. Everything it
// learns of the person comes from the front door, signed in with the bound
// key: no token is kept on the laptop.
package cli
