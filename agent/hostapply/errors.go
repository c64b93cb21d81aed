package hostapply

import "errors"

// Sentinel errors, found in a Problem's Err with errors.Is.
var (
	// ErrInvalid: the desired state holds something that must not reach a
	// file or a command (a bad name, an id out of range, an injection in a
	// sudo rule). It is refused before anything is run.
	ErrInvalid = errors.New("invalid")
	// ErrConflict: a name or id is taken by an account or group the agent
	// does not manage, or a managed one was changed in a way the agent will
	// not force back (its uid or gid).
	ErrConflict = errors.New("conflict")
	// ErrRejected: a system validator (visudo, sshd -t, sshd -T) refused
	// what the agent rendered; the previous files were kept or restored.
	ErrRejected = errors.New("rejected by the system's validator")
	// ErrUnsafeRoot: Config.Root is not "/" while commands run on the real
	// system, which would read one account database and change another.
	ErrUnsafeRoot = errors.New("config: a Root other than / needs a fake Runner")
)
