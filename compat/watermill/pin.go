// Package watermill holds Rill's compatibility scenarios for Watermill redisstream. The scenarios live in
// scenarios_test.go; this file only exists so that the module has a non-test package for `go mod tidy`.
package watermill
