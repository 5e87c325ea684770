//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package dtrfixture

// Without flock, test processes sharing an engine are not kept apart.
func lockEngine()   {}
func unlockEngine() {}
