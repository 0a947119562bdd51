package main

import (
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

// The wire reader agrees with go-control-plane's own types on the answers Plannt gives.
func TestHTTPStatusOfReadsWhatGoControlPlaneWrites(t *testing.T) {
	allow, _ := allowAll{}.Check(t.Context(), nil)
	denied := func(grpcCode int32, http typev3.StatusCode) *authv3.CheckResponse {
		return &authv3.CheckResponse{
			Status: &status.Status{Code: grpcCode, Message: "x"},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status: &typev3.HttpStatus{Code: http},
				Body:   `{"error":"payment_required"}`,
			}},
		}
	}
	cases := []struct {
		name string
		resp *authv3.CheckResponse
		want int
	}{
		{"ok_response with status OK", allow, 200},
		{"402 challenge", denied(7, typev3.StatusCode_PaymentRequired), 402},
		{"401 spent token", denied(16, typev3.StatusCode_Unauthorized), 401},
		{"503 spent-set unavailable", denied(14, typev3.StatusCode_ServiceUnavailable), 503},
		{"ok_response with a non-OK status is no allow", &authv3.CheckResponse{
			Status:       &status.Status{Code: 7},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
		}, 0},
	}
	for _, c := range cases {
		b, err := proto.Marshal(c.resp)
		if err != nil {
			t.Fatal(err)
		}
		got, err := httpStatusOf(b)
		if err != nil || got != c.want {
			t.Errorf("%s: got %d, %v; want %d", c.name, got, err, c.want)
		}
	}
	if _, err := httpStatusOf([]byte{0x0a, 0x05, 0x08}); err == nil {
		t.Error("a truncated answer must be an error")
	}
}
