package archive

import "encoding/json"

// Function binaries as RethinkDB 2.4 returns them: index_status() of
// indexCreate('repository') and get_write_hook() of a hook returning its
// new value. The hook's base64 has the line break RethinkDB writes.
var (
	testIndexFn = json.RawMessage(`{"$reql_type$":"BINARY","data":"JHJlcWxfaW5kZXhfZnVuY3Rpb24kCQcHBwAAAAAAAAHt/////////y8AAABbMzEsW1sxMCxbWzEsLTE5LDBdXSwwXSxbMSwicmVwb3NpdG9yeSIsMF1dLDBdAAAAAAAAAA=="}`)
	testHookFn  = json.RawMessage(`{"$reql_type$":"BINARY","data":"JHJlcWxfd3JpdGVfaG9va19mdW5jdGlvbiQAAAAAAAADAgAAAAAAAAADAAAAAAAAAAQAAAAAAAAA\r\nEwAAAFsxMCxbWzEsNCwxMV1dLDEwXQAKAAAA"}`)
	testHook    = json.RawMessage(`{"function":` + string(testHookFn) + `,"query":"setWriteHook(function(var2, var3, var4) { return var4; })"}`)
)
