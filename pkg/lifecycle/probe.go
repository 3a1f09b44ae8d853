package lifecycle

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"time"
)

// WaitHTTPOK polls url with client until it answers 200, or ctx ends. The
// last answer is part of the error, so a component that never gets ready says why.
func WaitHTTPOK(ctx context.Context, client *http.Client, url string) error {
	return WaitHTTP(ctx, client, url, nil)
}

// WaitHTTP polls url until it answers 200 OK with a body that accept takes
// (nil: any body), or ctx ends.
func WaitHTTP(ctx context.Context, client *http.Client, url string, accept func(body []byte) bool) error {
	last := "no answer yet"
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && (accept == nil || accept(body)) {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, body)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready (%s): %w", url, last, ctx.Err())
		case <-tick.C:
		}
	}
}

// LocalHealthClient is for a component's own health endpoint on loopback,
// whose serving certificate is made in memory at start and so cannot be pinned.
func LocalHealthClient() *http.Client {
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
}
