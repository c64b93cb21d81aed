// Package hostapply makes a server's local accounts, groups, sudo rules and
// sshd trust match what the cluster wants, touching only what it created.
//
// The agent's pull loop hands an Applier the Desired state; Apply reconciles
// in a fixed order (groups, users, group membership, sudo rules, sshd,
// principals files) and returns a Report of what it changed and what it refused.
// Every change goes through the system's own tools (useradd, usermod,
// groupadd, gpasswd, userdel, groupdel, visudo, sshd), run by a Runner so
// that tests can substitute a fake.
//
// # What the agent manages
//
// The agent manages exactly the accounts and groups it created, and knows
// them by its state file (Config.StateFile, by default
// /var/lib/rampart-agent/managed.json), which records each one's name and
// uid or gid. That file is the authority: an account is never taken over
// because of what it looks like. Managed accounts also carry the GECOS
// comment "rampart-managed" (Marker) so that a person reading /etc/passwd
// can tell, and so that an account whose creation was interrupted by a crash
// can be recognised as the agent's own on the next pass. Root, every account
// or group below Config.MinID, reserved names, and every account or group the
// state file does not list are never modified: a desired account whose name
// or uid (or group whose name or gid) is taken by one of them is reported as
// a conflict (ErrConflict) and left alone.
//
// A managed account has a private primary group of the same name whose gid
// equals its uid, the password field '*' (no password, but not locked: see
// DESIGN's pitfalls), no expiry, and exactly the supplementary groups it is
// given plus ManagedGroup, the system group the agent makes (groupadd -r)
// for sshd's certificates-only block. Deprovisioning (status disabled or
// deleted, or absence from Desired) locks and expires it (usermod -L -e 1),
// takes it out of every group but ManagedGroup,
// removes its principals file and kills its processes at once; a deleted
// account is removed (userdel) after Config.DeleteGrace, its home kept or
// archived per Config.HomeOnDelete.
//
// Sudo rules are rendered one file per entitlement to
// /etc/sudoers.d/rampart-<entitlement>, checked with visudo -cf before an
// atomic rename and with visudo -c after it; sshd trust goes to a drop-in
// (or a marked block at the top of sshd_config when it has no Include),
// checked with sshd -t and sshd -T before sshd is reloaded. Principals
// files, which let certificates in, are written last, and only while sshd -T
// shows the certificates-only block in effect for ManagedGroup.
package hostapply
