// plannt-aperture runs lightninglabs/aperture's own L402 code (v0.5.0, pinned in go.mod) against Plannt, for
// the interop tests in test/interop/aperture.test.ts. One command per run: a JSON request on stdin, a JSON
// answer on stdout. Only glue lives here; every L402 step (header, caveat, parsing, verification, the gRPC
// interceptor) is aperture's.
//
//	set-header   l402.SetHeader with the macaroon as bought, or with Token.PaidMacaroon()
//	from-header  l402.FromHeader on the given request headers
//	verify       mint.VerifyL402 with a SecretStore that answers Plannt's per-macaroon root key
//	grpc         grpc.health.v1 calls through l402.NewInterceptor (aperture's gRPC client), paying as told
//	fetch        an lnget-style HTTP agent: aperture's Token, FileStore, PaidMacaroon and SetHeader
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/lightninglabs/aperture/l402"
	"github.com/lightninglabs/aperture/mint"
	"github.com/lightninglabs/lndclient"
	"github.com/lightningnetwork/lnd/lnrpc"
	"github.com/lightningnetwork/lnd/lnrpc/routerrpc"
	"github.com/lightningnetwork/lnd/lntypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"gopkg.in/macaroon.v2"
)

func main() {
	if len(os.Args) != 2 {
		fail(errors.New("usage: plannt-aperture set-header|from-header|verify|grpc|fetch < request.json"))
	}
	commands := map[string]func(json.RawMessage) (any, error){
		"set-header":  setHeader,
		"from-header": fromHeader,
		"verify":      verify,
		"grpc":        grpcCalls,
		"fetch":       fetch,
	}
	run, ok := commands[os.Args[1]]
	if !ok {
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	out, err := run(input)
	if err != nil {
		fail(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "plannt-aperture:", err)
	os.Exit(1)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ---- set-header / from-header / verify ----------------------------------------------------------------

type tokenInput struct {
	Macaroon string `json:"macaroon"` // base64, as in Plannt's challenge
	Preimage string `json:"preimage"` // hex
}

func setHeader(raw json.RawMessage) (any, error) {
	var in struct {
		tokenInput
		Paid bool `json:"paid"` // send Token.PaidMacaroon() (adds preimage=<hex>) instead of the macaroon as bought
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, err
	}
	token, err := newToken(in.tokenInput)
	if err != nil {
		return nil, err
	}
	mac := token.BaseMacaroon()
	if in.Paid {
		if mac, err = token.PaidMacaroon(); err != nil {
			return nil, err
		}
	}
	header := http.Header{}
	if err := l402.SetHeader(&header, mac, token.Preimage); err != nil {
		return nil, err
	}
	macBytes, err := mac.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"authorization": header.Values("Authorization"),
		"macaroon_hex":  hex.EncodeToString(macBytes),
		"caveats":       caveatsOf(mac),
	}, nil
}

func fromHeader(raw json.RawMessage) (any, error) {
	var in struct {
		Headers map[string][]string `json:"headers"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, err
	}
	header := http.Header{}
	for name, values := range in.Headers {
		for _, v := range values {
			header.Add(name, v)
		}
	}
	mac, preimage, err := l402.FromHeader(&header)
	if err != nil {
		return map[string]any{"ok": false, "error": err.Error()}, nil
	}
	return map[string]any{
		"ok":             true,
		"identifier_hex": hex.EncodeToString(mac.Id()),
		"preimage":       preimage.String(),
		"caveats":        caveatsOf(mac),
	}, nil
}

// planntSecrets is aperture's mint.SecretStore answering Plannt's per-macaroon root key,
// HMAC-SHA256(server root key, identifier) (src/l402/keys.ts). aperture looks secrets up by sha256 of the
// identifier, which cannot be inverted, so the identifiers to serve are registered first.
type planntSecrets struct {
	serverKey []byte
	byIDHash  map[[sha256.Size]byte][l402.SecretSize]byte
}

func (s *planntSecrets) register(identifier []byte) {
	mac := hmac.New(sha256.New, s.serverKey)
	mac.Write(identifier)
	var secret [l402.SecretSize]byte
	copy(secret[:], mac.Sum(nil))
	s.byIDHash[sha256.Sum256(identifier)] = secret
}

func (s *planntSecrets) NewSecret(context.Context, [sha256.Size]byte) ([l402.SecretSize]byte, error) {
	return [l402.SecretSize]byte{}, errors.New("plannt mints its own tokens")
}

func (s *planntSecrets) GetSecret(_ context.Context, idHash [sha256.Size]byte) ([l402.SecretSize]byte, error) {
	secret, ok := s.byIDHash[idHash]
	if !ok {
		return secret, mint.ErrSecretNotFound
	}
	return secret, nil
}

func (s *planntSecrets) RevokeSecret(context.Context, [sha256.Size]byte) error { return nil }

func verify(raw json.RawMessage) (any, error) {
	var in struct {
		tokenInput
		RootKeyHex string `json:"root_key_hex"`
		Service    string `json:"service"`
		Paid       bool   `json:"paid"` // verify Token.PaidMacaroon() rather than the macaroon as bought
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, err
	}
	serverKey, err := hex.DecodeString(in.RootKeyHex)
	if err != nil {
		return nil, err
	}
	token, err := newToken(in.tokenInput)
	if err != nil {
		return nil, err
	}
	mac := token.BaseMacaroon()
	if in.Paid {
		if mac, err = token.PaidMacaroon(); err != nil {
			return nil, err
		}
	}
	secrets := &planntSecrets{serverKey: serverKey, byIDHash: map[[sha256.Size]byte][l402.SecretSize]byte{}}
	secrets.register(mac.Id())
	verifier := mint.New(&mint.Config{Secrets: secrets, Now: time.Now})
	err = verifier.VerifyL402(context.Background(), &mint.VerificationParams{
		Macaroon: mac, Preimage: token.Preimage, TargetService: in.Service,
	})
	return map[string]any{"ok": err == nil, "error": errText(err)}, nil
}

func caveatsOf(mac *macaroon.Macaroon) []string {
	out := []string{}
	for _, c := range mac.Caveats() {
		out = append(out, string(c.Id))
	}
	return out
}

// newToken makes an aperture l402.Token for a bought macaroon and its preimage.
func newToken(in tokenInput) (*l402.Token, error) {
	macBytes, err := base64.StdEncoding.DecodeString(in.Macaroon)
	if err != nil {
		return nil, fmt.Errorf("macaroon: %w", err)
	}
	token, err := tokenFromChallenge(macBytes)
	if err != nil {
		return nil, err
	}
	if in.Preimage != "" {
		if token.Preimage, err = lntypes.MakePreimageFromStr(in.Preimage); err != nil {
			return nil, err
		}
	}
	return token, nil
}

// tokenFromChallenge makes the pending aperture l402.Token of a challenge's macaroon. The Token's base
// macaroon field is unexported and so is aperture's constructor, so, as lnget does, it goes through
// aperture's own FileStore: written in the layout of aperture's serializeToken (l402/token.go, big-endian)
// and read back by FileStore.CurrentToken, which builds the Token with aperture's code.
func tokenFromChallenge(macBytes []byte) (*l402.Token, error) {
	mac := &macaroon.Macaroon{}
	if err := mac.UnmarshalBinary(macBytes); err != nil {
		return nil, err
	}
	id, err := l402.DecodeIdentifier(bytes.NewReader(mac.Id()))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, field := range []any{uint32(len(macBytes)), macBytes, id.PaymentHash, lntypes.Preimage{},
		uint64(0), uint64(0), time.Now().UnixNano()} {
		if err := binary.Write(&b, binary.BigEndian, field); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "plannt-aperture-token-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "l402.token.pending"), b.Bytes(), 0o600); err != nil {
		return nil, err
	}
	store, err := l402.NewFileStore(dir)
	if err != nil {
		return nil, err
	}
	return store.CurrentToken()
}

// ---- payers -------------------------------------------------------------------------------------------

type payerConfig struct {
	// "dev": POST {"invoice"} to DevPayURL (Plannt's admin /dev/pay). "lnd": pay from an lnd node.
	Kind         string `json:"kind"`
	DevPayURL    string `json:"dev_pay_url"`
	LndSocket    string `json:"lnd_socket"`
	LndCertPath  string `json:"lnd_cert_path"`
	LndMacaroon  string `json:"lnd_macaroon_path"`
	MaxFeeSat    int64  `json:"max_fee_sat"`
	TimeoutMilli int64  `json:"timeout_ms"`
}

type payment struct {
	preimage lntypes.Preimage
	amtSat   int64
	feeSat   int64
}

type payer func(ctx context.Context, invoice string) (payment, error)

func newPayer(cfg payerConfig) (payer, func(), error) {
	switch cfg.Kind {
	case "dev":
		return func(ctx context.Context, invoice string) (payment, error) {
			body, _ := json.Marshal(map[string]string{"invoice": invoice})
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.DevPayURL, bytes.NewReader(body))
			if err != nil {
				return payment{}, err
			}
			req.Header.Set("content-type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return payment{}, err
			}
			defer res.Body.Close()
			var out struct {
				Preimage string `json:"preimage"`
			}
			if err := json.NewDecoder(res.Body).Decode(&out); err != nil || res.StatusCode != 200 {
				return payment{}, fmt.Errorf("/dev/pay answered %d: %v", res.StatusCode, err)
			}
			p, err := lntypes.MakePreimageFromStr(out.Preimage)
			return payment{preimage: p}, err
		}, func() {}, nil
	case "lnd":
		creds, err := credentials.NewClientTLSFromFile(cfg.LndCertPath, "")
		if err != nil {
			return nil, nil, err
		}
		mac, err := os.ReadFile(cfg.LndMacaroon)
		if err != nil {
			return nil, nil, err
		}
		conn, err := grpc.NewClient(cfg.LndSocket, grpc.WithTransportCredentials(creds))
		if err != nil {
			return nil, nil, err
		}
		router := routerrpc.NewRouterClient(conn)
		return func(ctx context.Context, invoice string) (payment, error) {
			ctx = metadata.AppendToOutgoingContext(ctx, "macaroon", hex.EncodeToString(mac))
			stream, err := router.SendPaymentV2(ctx, &routerrpc.SendPaymentRequest{
				PaymentRequest: invoice, FeeLimitSat: cfg.MaxFeeSat, TimeoutSeconds: 60,
			})
			if err != nil {
				return payment{}, err
			}
			for {
				update, err := stream.Recv()
				if err != nil {
					return payment{}, err
				}
				switch update.Status {
				case lnrpc.Payment_SUCCEEDED:
					p, err := lntypes.MakePreimageFromStr(update.PaymentPreimage)
					return payment{preimage: p, amtSat: update.ValueSat, feeSat: update.FeeSat}, err
				case lnrpc.Payment_FAILED:
					return payment{}, fmt.Errorf("payment failed: %s", update.FailureReason)
				}
			}
		}, func() { conn.Close() }, nil
	}
	return nil, nil, fmt.Errorf("unknown payer kind %q", cfg.Kind)
}

// payingClient is the lndclient.LightningClient aperture's interceptor is given: PayInvoice, the only method
// it calls on a fresh token, goes to the configured payer; every other method is absent (nil interface).
type payingClient struct {
	lndclient.LightningClient
	pay      payer
	invoices *[]string
}

func (c payingClient) PayInvoice(ctx context.Context, invoice string, _ btcutil.Amount,
	_ *uint64) chan lndclient.PaymentResult {

	*c.invoices = append(*c.invoices, invoice)
	results := make(chan lndclient.PaymentResult, 1)
	go func() {
		p, err := c.pay(ctx, invoice)
		results <- lndclient.PaymentResult{
			Err: err, Preimage: p.preimage, PaidAmt: btcutil.Amount(p.amtSat), PaidFee: btcutil.Amount(p.feeSat),
		}
	}()
	return results
}

// ---- grpc: aperture's client interceptor ---------------------------------------------------------------

func grpcCalls(raw json.RawMessage) (any, error) {
	var in struct {
		Target   string      `json:"target"` // host:port of the Envoy-like front, plaintext HTTP/2
		Service  string      `json:"service"`
		Calls    int         `json:"calls"`
		StoreDir string      `json:"store_dir"` // aperture FileStore directory, shared across runs if wanted
		Payer    payerConfig `json:"payer"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, err
	}
	pay, closePayer, err := newPayer(in.Payer)
	if err != nil {
		return nil, err
	}
	defer closePayer()
	store, err := l402.NewFileStore(in.StoreDir)
	if err != nil {
		return nil, err
	}
	invoices := []string{}
	lnd := &lndclient.LndServices{
		Client:      payingClient{pay: pay, invoices: &invoices},
		ChainParams: &chaincfg.RegressionNetParams,
	}
	// allowInsecure: the test front is plaintext h2c on loopback.
	interceptor := l402.NewInterceptor(lnd, store, 20*time.Second, l402.DefaultMaxCostSats,
		l402.DefaultMaxRoutingFeeSats, true)
	conn, err := grpc.NewClient(in.Target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(interceptor.UnaryInterceptor))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	results := []map[string]any{}
	for i := 0; i < in.Calls; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		res, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: in.Service})
		cancel()
		st := status.Convert(err)
		result := map[string]any{
			"ok": err == nil, "code": st.Code().String(), "message": st.Message(),
			"payment_required": l402.IsPaymentRequired(err),
		}
		if res != nil {
			result["serving"] = res.GetStatus().String()
		}
		results = append(results, result)
	}
	return map[string]any{"results": results, "invoices_paid": invoices}, nil
}

// ---- fetch: an lnget-style agent ----------------------------------------------------------------------

// The challenge grammar lnget reads from the first WWW-Authenticate value (lnget l402/header.go).
var challengeRegex = regexp.MustCompile(`(?i)(LSAT|L402)\s+macaroon="([^"]+)",\s*invoice="([^"]+)"`)

type agent struct {
	storeDir string
	pay      payer
	payments []map[string]any
	trace    []map[string]any
}

func fetch(raw json.RawMessage) (any, error) {
	var in struct {
		URLs     []string    `json:"urls"`
		StoreDir string      `json:"store_dir"`
		Payer    payerConfig `json:"payer"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, err
	}
	pay, closePayer, err := newPayer(in.Payer)
	if err != nil {
		return nil, err
	}
	defer closePayer()
	a := &agent{storeDir: in.StoreDir, pay: pay, payments: []map[string]any{}, trace: []map[string]any{}}
	results := []map[string]any{}
	for _, u := range in.URLs {
		status, body, err := a.get(u)
		results = append(results, map[string]any{"url": u, "status": status, "body": body, "error": errText(err)})
	}
	return map[string]any{"results": results, "payments": a.payments, "trace": a.trace}, nil
}

func (a *agent) send(u string, token *l402.Token, prefix string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	sent := []string{}
	if token != nil {
		mac, err := token.PaidMacaroon()
		if err != nil {
			return nil, err
		}
		if err := l402.SetHeader(&req.Header, mac, token.Preimage); err != nil {
			return nil, err
		}
		// lnget replaces aperture's LSAT+L402 pair with one value in the challenge's scheme (L402 when the
		// token comes from the cache).
		value := req.Header.Get("Authorization")
		if strings.HasPrefix(value, "LSAT ") {
			req.Header.Set("Authorization", prefix+value[4:])
		}
		sent = req.Header.Values("Authorization")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	a.trace = append(a.trace, map[string]any{"url": u, "authorization": sent, "status": res.StatusCode})
	return res, nil
}

func isChallenge(res *http.Response) bool {
	if res.StatusCode != http.StatusPaymentRequired {
		return false
	}
	v := strings.ToLower(res.Header.Get("WWW-Authenticate"))
	return strings.HasPrefix(v, "l402 ") || strings.HasPrefix(v, "lsat ")
}

func drain(res *http.Response) {
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
}

func readBody(res *http.Response) (int, string, error) {
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, string(body), err
}

// get follows lnget's transport: a cached token for the host goes first and is kept unless the answer is a
// 402; otherwise ask without one, discard that 402, ask again for a fresh challenge, pay it, store the token
// for the host and retry with it.
func (a *agent) get(u string) (int, string, error) {
	parsed, err := url.Parse(u)
	if err != nil {
		return 0, "", err
	}
	dir := filepath.Join(a.storeDir, strings.ReplaceAll(parsed.Host, ":", "_"))
	store, err := l402.NewFileStore(dir)
	if err != nil {
		return 0, "", err
	}
	if token, err := store.CurrentToken(); err == nil && token.Preimage != (lntypes.Preimage{}) {
		res, err := a.send(u, token, "L402")
		if err != nil {
			return 0, "", err
		}
		if res.StatusCode != http.StatusPaymentRequired {
			return readBody(res)
		}
		// Refused: evicted. A 402 carrying a challenge stands for the first 402; otherwise ask without one.
		drain(res)
		if err := os.RemoveAll(dir); err != nil {
			return 0, "", err
		}
		if store, err = l402.NewFileStore(dir); err != nil {
			return 0, "", err
		}
		if !isChallenge(res) {
			res, err := a.send(u, nil, "")
			if err != nil {
				return 0, "", err
			}
			if !isChallenge(res) {
				return readBody(res)
			}
			drain(res)
		}
	} else {
		res, err := a.send(u, nil, "")
		if err != nil {
			return 0, "", err
		}
		if !isChallenge(res) {
			return readBody(res)
		}
		drain(res)
	}

	fresh, err := a.send(u, nil, "")
	if err != nil {
		return 0, "", err
	}
	if !isChallenge(fresh) {
		return readBody(fresh)
	}
	challenge := fresh.Header.Get("WWW-Authenticate")
	drain(fresh)
	m := challengeRegex.FindStringSubmatch(challenge)
	if len(m) != 4 {
		return 0, "", fmt.Errorf("invalid L402 challenge format: %s", challenge)
	}
	macBytes, err := base64.StdEncoding.DecodeString(m[2])
	if err != nil {
		return 0, "", err
	}
	token, err := tokenFromChallenge(macBytes)
	if err != nil {
		return 0, "", err
	}
	// Stored pending before paying, so an interrupted payment is not forgotten; aperture's FileStore turns
	// it into the paid token when the preimage is stored.
	if err := store.StoreToken(token); err != nil {
		return 0, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, err := a.pay(ctx, m[3])
	if err != nil {
		return 0, "", fmt.Errorf("payment failed: %w", err)
	}
	a.payments = append(a.payments, map[string]any{"invoice": m[3], "preimage": p.preimage.String()})
	token.Preimage = p.preimage
	if err := store.StoreToken(token); err != nil {
		return 0, "", err
	}
	prefix := "L402"
	if strings.EqualFold(m[1], "LSAT") {
		prefix = "LSAT"
	}
	res, err := a.send(u, token, prefix)
	if err != nil {
		return 0, "", err
	}
	return readBody(res)
}
