package rethinkserver

// TB is what the test servers and fixtures need of a test. testing.TB
// has it, and so does a program that starts them to keep them (the
// sandbox, internal/sandbox), which testing.TB's unexported method would
// shut out.
type TB interface {
	Helper()
	Name() string
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skip(args ...any)
	Failed() bool
	Cleanup(func())
	TempDir() string
}
