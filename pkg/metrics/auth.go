package metrics

import (
	"errors"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/request/headerrequest"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The request-header settings must match the kube-apiserver's flags
// (requestheader-* in pkg/component/apiserver): the aggregator proxies with
// the front-proxy client certificate and names the user in these headers.
var (
	// proxyClientNames are the certificate CNs allowed to assert a user; any
	// other certificate from the request-header CA is refused.
	proxyClientNames = []string{"system:auth-proxy"}
	usernameHeaders  = []string{"X-Remote-User"}
	groupHeaders     = []string{"X-Remote-Group"}
	extraPrefixes    = []string{"X-Remote-Extra-"}
)

// Authorization decisions are cached as the apiserver's delegated
// authorization does by default: kubectl top and the HPA ask often.
const (
	allowCacheTTL = 10 * time.Second
	denyCacheTTL  = 10 * time.Second
)

// newAuthenticator trusts the user named in the request headers only when the
// client certificate chains to the request-header CA (caPEM) and its CN is
// one of proxyClientNames.
func newAuthenticator(caPEM []byte) (authenticator.Request, error) {
	ca, err := dynamiccertificates.NewStaticCAContent("request-header", caPEM)
	if err != nil {
		return nil, err
	}
	return headerrequest.NewDynamicVerifyOptionsSecure(
		ca.VerifyOptions,
		headerrequest.StaticStringSlice(proxyClientNames),
		headerrequest.StaticStringSlice(usernameHeaders),
		headerrequest.StaticStringSlice(nil), // the apiserver sends no UID header
		headerrequest.StaticStringSlice(groupHeaders),
		headerrequest.StaticStringSlice(extraPrefixes),
	), nil
}

// newAuthorizer asks the apiserver with SubjectAccessReviews, posted through
// client.AuthorizationV1().RESTClient(), and caches the answers (upstream's
// delegating authorizer).
func newAuthorizer(client kubernetes.Interface) (authorizer.Authorizer, error) {
	reviews := client.AuthorizationV1()
	// A clientset without a REST client (the fake one's is a nil
	// *rest.RESTClient) would panic on the first review: refuse it here.
	if rc, ok := reviews.RESTClient().(*rest.RESTClient); reviews.RESTClient() == nil || ok && rc == nil {
		return nil, errors.New("the clientset cannot post SubjectAccessReviews: it has no REST client")
	}
	return authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: reviews,
		AllowCacheTTL:             allowCacheTTL,
		DenyCacheTTL:              denyCacheTTL,
		// A few short retries, so a blip of the apiserver doesn't fail kubectl top.
		WebhookRetryBackoff: &wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5},
	}.New()
}
