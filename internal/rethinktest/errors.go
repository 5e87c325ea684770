package rethinktest

import (
	"fmt"

	p "gopkg.in/rethinkdb/rethinkdb-go.v6/ql2"
)

// rqlError is an error that is sent to the client as an error response.
type rqlError struct {
	rtype p.Response_ResponseType // CLIENT_ERROR, COMPILE_ERROR or RUNTIME_ERROR
	etype p.Response_ErrorType    // only meaningful for RUNTIME_ERROR
	msg   string
}

func (e *rqlError) Error() string { return e.msg }

func clientErr(format string, a ...any) *rqlError {
	return &rqlError{rtype: p.Response_CLIENT_ERROR, msg: fmt.Sprintf(format, a...)}
}

func compileErr(format string, a ...any) *rqlError {
	return &rqlError{rtype: p.Response_COMPILE_ERROR, msg: fmt.Sprintf(format, a...)}
}

func runtimeErr(et p.Response_ErrorType, format string, a ...any) *rqlError {
	return &rqlError{rtype: p.Response_RUNTIME_ERROR, etype: et, msg: fmt.Sprintf(format, a...)}
}

// logicErr is RethinkDB's base_exc_t::LOGIC, the most common runtime error.
func logicErr(format string, a ...any) *rqlError {
	return runtimeErr(p.Response_QUERY_LOGIC, format, a...)
}

func nonExistence(format string, a ...any) *rqlError {
	return runtimeErr(p.Response_NON_EXISTENCE, format, a...)
}

func opFailed(format string, a ...any) *rqlError {
	return runtimeErr(p.Response_OP_FAILED, format, a...)
}
