// Package featuretests drives a real in-process mizzen xDS server with a real
// gRPC ADS client and compares the protobufs it serves, one test per feature
// (in the style of Contour's internal/featuretests). Only the exported API of
// package xds is used; everything lives in _test.go files.
package featuretests
