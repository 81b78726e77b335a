// Package dynamotest runs an in-process server that speaks DynamoDB's JSON
// protocol, for tests that drive the real AWS SDK client without Docker or
// a cloud account. The server is github.com/truora/minidyn's, with the few
// operations it lacks filled in for the create-table path and the store's
// readiness check.
package dynamotest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/truora/minidyn/server"
)

// Region is the region that clients of the server use; any would do.
const Region = "us-east-1"

// Start starts a new, empty server for the test and returns its URL. The
// server stops when the test ends. It is safe for concurrent use; minidyn
// serialises every request, so contention between transactions never shows.
func Start(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(&ttlShim{next: server.NewServer(), specs: map[string]string{}})
	t.Cleanup(srv.Close)
	return srv.URL
}

// Client returns a client of the server at endpoint with its own connection
// pool, as a separate process would have. wrap, if not nil, wraps its
// transport, for example to inject faults.
func Client(t testing.TB, endpoint string, wrap func(http.RoundTripper) http.RoundTripper) *dynamodb.Client {
	t.Helper()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(transport.CloseIdleConnections)
	var rt http.RoundTripper = transport
	if wrap != nil {
		rt = wrap(rt)
	}
	cfg := aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:  &http.Client{Transport: rt},
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// Env returns the environment that points the AWS SDK's default
// configuration at the server at endpoint, for code that loads it itself.
func Env(endpoint string) map[string]string {
	return map[string]string{
		"AWS_REGION":                Region,
		"AWS_ACCESS_KEY_ID":         "test",
		"AWS_SECRET_ACCESS_KEY":     "test",
		"AWS_ENDPOINT_URL_DYNAMODB": endpoint,
	}
}

// ttlShim fills two gaps of minidyn so that the create-table path and the
// store's readiness check run unchanged against the in-process server: it
// answers the two TTL operations, remembering each table's TTL attribute,
// and adds the ACTIVE status that minidyn's DescribeTable leaves out (its
// tables are usable at once). For a table that does not exist, minidyn's
// own DescribeTable answers ResourceNotFoundException, as DynamoDB does. Every other request goes to minidyn as it is. minidyn never
// deletes expired items, which is the worst case DynamoDB's lazy TTL allows
// and the one the store must count right in.
type ttlShim struct {
	next  http.Handler
	mu    sync.Mutex
	specs map[string]string // table -> TTL attribute
}

func (s *ttlShim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := r.Header.Get("X-Amz-Target")
	op = op[strings.LastIndex(op, ".")+1:]
	switch op {
	case "UpdateTimeToLive", "DescribeTimeToLive":
	case "DescribeTable":
		s.describeTable(w, r)
		return
	default:
		s.next.ServeHTTP(w, r)
		return
	}
	var in struct {
		TableName               string
		TimeToLiveSpecification struct {
			AttributeName string
			Enabled       bool
		}
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	if op == "UpdateTimeToLive" {
		if in.TimeToLiveSpecification.Enabled {
			s.specs[in.TableName] = in.TimeToLiveSpecification.AttributeName
		} else {
			delete(s.specs, in.TableName)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"TimeToLiveSpecification": in.TimeToLiveSpecification})
		return
	}
	desc := map[string]any{"TimeToLiveStatus": "DISABLED"}
	if attr, ok := s.specs[in.TableName]; ok {
		desc = map[string]any{"TimeToLiveStatus": "ENABLED", "AttributeName": attr}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"TimeToLiveDescription": desc})
}

func (s *ttlShim) describeTable(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	s.next.ServeHTTP(rec, r)
	var out map[string]map[string]any
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil || out["Table"] == nil {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	if status, _ := out["Table"]["TableStatus"].(string); status == "" {
		out["Table"]["TableStatus"] = "ACTIVE"
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	_ = json.NewEncoder(w).Encode(out)
}
