package model

import (
	"errors"
	"fmt"
	"strings"
)

// Envoy refuses a whole resource (a NACK: the proxy keeps its old config and
// every later update of that type is blocked) for one value outside its
// limits. The limits below are Envoy 1.40's, from its protoc-gen-validate
// rules (go-control-plane's ValidateAll) and its runtime checks; mizzen
// refuses the object that carries such a value instead of sending it.
const (
	// maxHeaderBytes: HeaderValue.key and .value (request/response headers
	// to add) are at most 16 KiB. Match values have no such rule in Envoy,
	// but a request header that long cannot arrive either, so mizzen caps
	// them the same way.
	maxHeaderBytes = 16384
	// maxHeadersToAdd: Route.request_headers_to_add and
	// response_headers_to_add hold at most 1000 entries each.
	maxHeadersToAdd = 1000
	// maxQueryParamNameBytes: QueryParameterMatcher.name is 1-1024 bytes.
	maxQueryParamNameBytes = 1024
)

// RegexProblem says why Envoy would refuse the regex in a safe_regex
// matcher, or "" when it compiles within MaxRegexProgramSize.
func RegexProblem(re string) string {
	size, err := RegexProgramSize(re)
	switch {
	case errors.Is(err, errRegexTooLarge):
		return fmt.Sprintf("%s compiles to an RE2 program far above the %d instructions Envoy accepts (re2.max_program_size.error_level)",
			quoteShort(re), MaxRegexProgramSize)
	case err != nil:
		return fmt.Sprintf("%s is not a valid RE2 regex: %v", quoteShort(re), err)
	case size > MaxRegexProgramSize:
		return fmt.Sprintf("%s compiles to an RE2 program of %d instructions; Envoy refuses more than %d (re2.max_program_size.error_level) "+
			"and would reject the whole route table", quoteShort(re), size, MaxRegexProgramSize)
	}
	return ""
}

// quoteShort quotes a value for a message without repeating a 16 KiB one.
func quoteShort(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%q… (%d bytes)", s[:80], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// headerNameProblem: Envoy's header names (HeaderMatcher.name,
// HeaderValue.key) are non-empty, without NUL, CR or LF, at most 16 KiB.
func headerNameProblem(name string) string {
	switch {
	case name == "":
		return "header name must not be empty"
	case strings.ContainsAny(name, "\x00\r\n"):
		return fmt.Sprintf("header name %q contains NUL, CR or LF", name)
	case len(name) > maxHeaderBytes:
		return fmt.Sprintf("header name is %d bytes; Envoy accepts at most %d", len(name), maxHeaderBytes)
	}
	return ""
}

// headerValueLengthProblem: a header value mizzen sends is at most 16 KiB.
func headerValueLengthProblem(value string) string {
	if len(value) > maxHeaderBytes {
		return fmt.Sprintf("header value %s is longer than the %d bytes Envoy accepts", quoteShort(value), maxHeaderBytes)
	}
	return ""
}
