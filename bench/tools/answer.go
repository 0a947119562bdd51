package main

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers in envoy.service.auth.v3.CheckResponse and the messages it holds: the load generator reads
// only these, straight from the wire, so its CPU per call stays small beside the server's.
const (
	checkResponseStatus   = 1 // google.rpc.Status status
	checkResponseDenied   = 2 // DeniedHttpResponse denied_response
	checkResponseOk       = 3 // OkHttpResponse ok_response
	rpcStatusCode         = 1 // int32 code
	deniedHTTPStatus      = 1 // envoy.type.v3.HttpStatus status
	httpStatusCode        = 1 // envoy.type.v3.StatusCode code
	allowedHTTPStatusCode = 200
)

// httpStatusOf is the HTTP status a CheckResponse gives the downstream request: 200 for an ok_response with
// gRPC status OK, the denied_response's status code for a denial (0 when it names none).
func httpStatusOf(b []byte) (int, error) {
	var grpcCode, denied uint64
	ok := false
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		body, m := protowire.ConsumeBytes(v)
		if m < 0 {
			return protowire.ParseError(m)
		}
		var err error
		switch num {
		case checkResponseStatus:
			grpcCode, err = varintField(body, rpcStatusCode)
		case checkResponseDenied:
			var status []byte
			if status, err = bytesField(body, deniedHTTPStatus); err == nil {
				denied, err = varintField(status, httpStatusCode)
			}
		case checkResponseOk:
			ok = true
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	if ok && grpcCode == 0 {
		return allowedHTTPStatusCode, nil
	}
	return int(denied), nil
}

// varintField returns the last value of varint field num in message b (0 when absent, as proto3 reads it).
func varintField(b []byte, num protowire.Number) (uint64, error) {
	var out uint64
	err := eachField(b, func(n protowire.Number, typ protowire.Type, v []byte) error {
		if n != num || typ != protowire.VarintType {
			return nil
		}
		x, m := protowire.ConsumeVarint(v)
		if m < 0 {
			return protowire.ParseError(m)
		}
		out = x
		return nil
	})
	return out, err
}

// bytesField returns the last value of length-delimited field num in message b (nil when absent).
func bytesField(b []byte, num protowire.Number) ([]byte, error) {
	var out []byte
	err := eachField(b, func(n protowire.Number, typ protowire.Type, v []byte) error {
		if n != num || typ != protowire.BytesType {
			return nil
		}
		x, m := protowire.ConsumeBytes(v)
		if m < 0 {
			return protowire.ParseError(m)
		}
		out = x
		return nil
	})
	return out, err
}

var errTruncated = errors.New("truncated protobuf field")

// eachField calls f with each field's number, type and the bytes from its value onward.
func eachField(b []byte, f func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, typ, b); err != nil {
			return err
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return errTruncated
		}
		b = b[m:]
	}
	return nil
}
