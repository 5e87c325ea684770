package plugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/docker/cli/cli/command"
)

// errCancelled is the answer "no" to a confirmation.
var errCancelled = errors.New("restore cancelled at the prompt: nothing was changed")

// confirm asks on a terminal before a restore changes anything. Without a
// terminal there is no one to ask, and the caller's --force rules decide.
func confirm(ctx context.Context, dockerCli command.Cli, question string) error {
	in := dockerCli.In()
	if !in.IsTerminal() {
		return nil
	}
	fmt.Fprintf(dockerCli.Err(), "%s [y/N] ", question)
	answer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(in).ReadString('\n')
		answer <- strings.ToLower(strings.TrimSpace(line))
	}()
	select {
	case <-ctx.Done():
		fmt.Fprintln(dockerCli.Err())
		return errCancelled
	case a := <-answer:
		if a == "y" || a == "yes" {
			return nil
		}
		return errCancelled
	}
}
