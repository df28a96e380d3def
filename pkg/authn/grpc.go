package authn

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Interceptors authenticate every call of a gRPC server before its handler
// runs: a call that proves no identity is refused (Code), and the handler
// finds the identity with FromContext, and, when a Rechecker proved it, the
// means to check it again with RecheckFromContext. onFail sees each refusal
// (for logs and metrics); it may be nil.
func Interceptors(a Authenticator, onFail func(method string, err error)) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	rc, _ := a.(Rechecker)
	check := func(ctx context.Context, method string) (context.Context, error) {
		id, err := a.Authenticate(ctx)
		if err != nil {
			if onFail != nil {
				onFail(method, err)
			}
			return nil, status.Errorf(Code(err), "authentication failed: %v", err)
		}
		if rc != nil {
			ctx = WithRecheck(ctx, rc.Rechecker(ctx, id))
		}
		return WithIdentity(ctx, id), nil
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ctx, err := check(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		ctx, err := check(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return h(srv, &identityStream{ServerStream: ss, ctx: ctx})
	}
	return unary, stream
}

// Code is the gRPC status of a refusal: Unauthenticated when the credential
// was refused; when it could not be checked, codes a client retries on:
// ResourceExhausted for a caller over its address's budget, Unavailable when
// mizzen or the apiserver could not answer.
func Code(err error) codes.Code {
	switch Reason(err) {
	case ReasonRateLimited:
		return codes.ResourceExhausted
	case ReasonOverloaded, ReasonReviewFailed:
		return codes.Unavailable
	}
	return codes.Unauthenticated
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }
