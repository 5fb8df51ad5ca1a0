package allocator

import "errors"

// Sentinel errors, wrapped with details; callers tell cases apart with
// errors.Is and show the full message to users.
var (
	// ErrNoConfig: no valid configuration has been loaded.
	ErrNoConfig = errors.New("no valid configuration loaded")
	// ErrNoPool: no pool may serve this Service.
	ErrNoPool = errors.New("no pool matches")
	// ErrPoolExhausted: the pools that may serve the Service are full.
	ErrPoolExhausted = errors.New("pool exhausted")
	// ErrIPTaken: a requested address belongs to another Service that cannot
	// share it.
	ErrIPTaken = errors.New("requested IP taken")
	// ErrIPNotInPool: a requested address is in no pool (or not in the
	// requested one).
	ErrIPNotInPool = errors.New("requested IP outside every pool")
	// ErrBadRequest: the Service's annotations or spec are inconsistent.
	ErrBadRequest = errors.New("bad annotation")
)
