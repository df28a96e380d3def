package model

// grpcStatusCodes are the gRPC status names Istio accepts in a fault abort's
// grpcStatus (https://github.com/grpc/grpc/blob/master/doc/statuscodes.md).
var grpcStatusCodes = map[string]uint32{
	"OK":                  0,
	"CANCELLED":           1,
	"UNKNOWN":             2,
	"INVALID_ARGUMENT":    3,
	"DEADLINE_EXCEEDED":   4,
	"NOT_FOUND":           5,
	"ALREADY_EXISTS":      6,
	"PERMISSION_DENIED":   7,
	"RESOURCE_EXHAUSTED":  8,
	"FAILED_PRECONDITION": 9,
	"ABORTED":             10,
	"OUT_OF_RANGE":        11,
	"UNIMPLEMENTED":       12,
	"INTERNAL":            13,
	"UNAVAILABLE":         14,
	"DATA_LOSS":           15,
	"UNAUTHENTICATED":     16,
}

// GRPCStatusCode returns the numeric code of a gRPC status name ("UNAVAILABLE").
func GRPCStatusCode(name string) (uint32, bool) {
	c, ok := grpcStatusCodes[name]
	return c, ok
}
