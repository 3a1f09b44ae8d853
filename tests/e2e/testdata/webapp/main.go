// Command webapp is the e2e tests' workload: `webapp serve` answers every
// HTTP request with its host (pod) name, and /ip with the caller's address;
// `webapp get URL` fetches URL and prints the body, `webapp lookup NAME`
// prints NAME's addresses (the pod's resolver), `webapp write FILE TEXT` and
// `webapp cat FILE` write and print a file, for checks made from inside a
// pod; `webapp burn` keeps one CPU busy.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

// tools are the one-shot subcommands, with their argument counts.
var tools = map[string]struct {
	args int
	fn   func(args []string) error
}{
	"lookup": {1, func(a []string) error {
		addrs, err := net.LookupHost(a[0])
		if err != nil {
			return err
		}
		sort.Strings(addrs)
		fmt.Println(strings.Join(addrs, " "))
		return nil
	}},
	"write": {2, func(a []string) error { return os.WriteFile(a[0], []byte(a[1]), 0o644) }},
	"cat": {1, func(a []string) error {
		data, err := os.ReadFile(a[0])
		os.Stdout.Write(data)
		return err
	}},
	"burn": {0, func([]string) error {
		for x := 0; ; x++ {
			_ = x * x
		}
	}},
}

func main() {
	if len(os.Args) > 1 {
		if run, ok := tools[os.Args[1]]; ok && len(os.Args) == run.args+2 {
			if err := run.fn(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			return
		}
	}
	if len(os.Args) > 2 && os.Args[1] == "get" {
		client := &http.Client{Timeout: 5 * time.Second}
		resp, err := client.Get(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer resp.Body.Close()
		io.Copy(os.Stdout, resp.Body)
		return
	}
	name, _ := os.Hostname()
	addr := ":8080"
	if v := os.Getenv("LISTEN"); v != "" {
		addr = v
	}
	fmt.Printf("webapp %s listening on %s\n", name, addr)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, name)
	})
	http.HandleFunc("/ip", func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprint(w, host)
	})
	if err := http.ListenAndServe(addr, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
