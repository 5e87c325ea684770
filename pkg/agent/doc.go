// Package agent is what the plugin's binary does when it runs as the agent
// inside a helper container (the hidden 'docker dtr agent' command): measure
// an image volume (DU) and empty it (Wipe). The tunnel's relay, the third
// thing it does there, is pkg/tunnel's ServeStdio; pkg/agentbin ships the
// binary into the helper.
package agent
