// Package registrytool pins the image registry the end-to-end tests run
// (distribution v3, a Go tool of this module); internal/dtrfixture builds
// it from here.
package registrytool
