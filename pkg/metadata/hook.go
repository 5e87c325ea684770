package metadata

import (
	"encoding/json"
	"errors"
)

// hookFunction extracts the function binary from get_write_hook()'s result.
func hookFunction(raw json.RawMessage) (json.RawMessage, error) {
	var hook struct {
		Function json.RawMessage `json:"function"`
	}
	if err := json.Unmarshal(raw, &hook); err != nil {
		return nil, err
	}
	if len(hook.Function) == 0 {
		return nil, errors.New("no function")
	}
	return hook.Function, nil
}
