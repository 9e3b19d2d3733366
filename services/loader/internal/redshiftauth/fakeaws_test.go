package redshiftauth_test

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// fakeAWS answers the two credentials APIs in their real wire formats, as the SDK's
// deserializers read them: redshift's awsQuery protocol (form-encoded POST, XML answer
// <GetClusterCredentialsWithIAMResponse><GetClusterCredentialsWithIAMResult>...) and
// redshift-serverless' awsJson1.1 (X-Amz-Target RedshiftServerless.GetCredentials, JSON
// answer with the expiration in epoch seconds). Errors are the protocols' error documents.
type fakeAWS struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	calls   []apiCall
	answers []answer      // one per call, the last one repeated
	block   chan struct{} // when set, every call waits for it to close
}

// apiCall is what the fake received.
type apiCall struct {
	api           string            // GetClusterCredentialsWithIAM or GetCredentials
	params        map[string]string // form values, or the JSON body's fields
	authorization string
}

// answer is the fake's answer to a call: credentials, or an error code.
type answer struct {
	user, password string
	expiration     time.Time
	errCode        string
}

func newFakeAWS(t *testing.T, answers ...answer) *fakeAWS {
	t.Helper()
	f := &fakeAWS{t: t, answers: answers}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// awsConfig is an SDK configuration that signs with static test credentials and sends
// every service's requests to the fake.
func (f *fakeAWS) awsConfig() aws.Config {
	return aws.Config{
		Region:       "eu-west-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDREDSHIFTTEST", "test-secret", ""),
		BaseEndpoint: aws.String(f.srv.URL),
		HTTPClient:   f.srv.Client(),
	}
}

func (f *fakeAWS) recorded() []apiCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]apiCall(nil), f.calls...)
}

func (f *fakeAWS) setAnswers(answers ...answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers = answers
}

func (f *fakeAWS) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c := apiCall{params: map[string]string{}, authorization: r.Header.Get("Authorization")}
	serverless := r.Header.Get("X-Amz-Target") != ""
	if serverless {
		c.api = strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "RedshiftServerless.")
		var fields map[string]any
		if err := json.Unmarshal(body, &fields); err != nil {
			f.t.Errorf("serverless request body %q: %v", body, err)
		}
		for k, v := range fields {
			c.params[k] = fmt.Sprint(v)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
			f.t.Errorf("serverless request Content-Type = %q, want application/x-amz-json-1.1", ct)
		}
	} else {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			f.t.Errorf("redshift request body %q: %v", body, err)
		}
		for k := range form {
			c.params[k] = form.Get(k)
		}
		c.api = form.Get("Action")
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	a := answer{errCode: "InternalFailure"}
	if len(f.answers) > 0 {
		a = f.answers[min(len(f.calls), len(f.answers))-1]
	}
	block := f.block
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	if serverless {
		writeServerless(w, a)
	} else {
		writeQuery(w, a)
	}
}

func writeQuery(w http.ResponseWriter, a answer) {
	w.Header().Set("Content-Type", "text/xml")
	if a.errCode != "" {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `<ErrorResponse xmlns="http://redshift.amazonaws.com/doc/2012-12-01/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s: the fake says no</Message></Error><RequestId>req-1</RequestId></ErrorResponse>`,
			escape(a.errCode), escape(a.errCode))
		return
	}
	fmt.Fprintf(w, `<GetClusterCredentialsWithIAMResponse xmlns="http://redshift.amazonaws.com/doc/2012-12-01/">
  <GetClusterCredentialsWithIAMResult>
    <DbUser>%s</DbUser>
    <DbPassword>%s</DbPassword>
    <Expiration>%s</Expiration>
    <NextRefreshTime>%s</NextRefreshTime>
  </GetClusterCredentialsWithIAMResult>
  <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>
</GetClusterCredentialsWithIAMResponse>`,
		escape(a.user), escape(a.password), a.expiration.UTC().Format(time.RFC3339), a.expiration.UTC().Format(time.RFC3339))
}

func writeServerless(w http.ResponseWriter, a answer) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if a.errCode != "" {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{
			"__type": "com.amazonaws.redshiftserverless#" + a.errCode, "message": a.errCode + ": the fake says no",
		})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"dbUser": a.user, "dbPassword": a.password,
		"expiration": float64(a.expiration.Unix()), "nextRefreshTime": float64(a.expiration.Unix()),
	})
}

func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
