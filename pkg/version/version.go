// Package version holds the build's version, set by the linker:
// -ldflags "-X github.com/mizzenmesh/mizzen/pkg/version.Version=v0.1.0".
package version

// Version and Commit are overwritten at link time; "dev" means a local build.
var (
	Version = "dev"
	Commit  = "unknown"
)
