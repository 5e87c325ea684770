// Package termscreen renders what a terminal shows for the bytes written to
// it, for tests that read progress output the way a person would.
package termscreen

import "fmt"

// Screen is the terminal's text. It knows carriage return, newline (to the
// start of the next line, as a pty's ONLCR makes it) and erase to the end of
// the line, the only escape sequence the progress printer writes.
type Screen struct {
	lines [][]rune
	row   int
	col   int
	// Frames are the lines erased: the updates a person saw go by.
	Frames []string
}

// Render plays out on an empty screen. Any other escape sequence is an
// error: a terminal would show it as garbage or act on it.
func Render(out string) (*Screen, error) {
	s := &Screen{lines: [][]rune{nil}}
	rs := []rune(out)
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; {
		case c == '\r':
			s.col = 0
		case c == '\n':
			s.row++
			s.col = 0
			if s.row == len(s.lines) {
				s.lines = append(s.lines, nil)
			}
		case c == '\x1b':
			if i+2 >= len(rs) || rs[i+1] != '[' || rs[i+2] != 'K' {
				return nil, fmt.Errorf("unexpected escape sequence at %d: %q", i, string(rs[i:min(i+6, len(rs))]))
			}
			i += 2
			line := s.lines[s.row]
			if len(line) > 0 {
				s.Frames = append(s.Frames, string(line))
			}
			if s.col < len(line) {
				s.lines[s.row] = line[:s.col]
			}
		default:
			line := s.lines[s.row]
			for len(line) <= s.col {
				line = append(line, ' ')
			}
			line[s.col] = c
			s.lines[s.row] = line
			s.col++
		}
	}
	return s, nil
}

// Text is the screen's lines that hold something, top to bottom.
func (s *Screen) Text() []string {
	var out []string
	for _, l := range s.lines {
		if len(l) > 0 {
			out = append(out, string(l))
		}
	}
	return out
}
