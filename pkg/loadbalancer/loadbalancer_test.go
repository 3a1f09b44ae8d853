package loadbalancer

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/hw-k8s/hw/pkg/kubeclient"
)

// backend answers every connection with its name.
func backend(t *testing.T, name string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(name + "\n"))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

func answer(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

func kubernetesSlice(port int) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(port))}},
	}
}

// The load balancer starts with the server it was given, learns the others
// from the `kubernetes` endpoints, saves them, and sends new connections to
// another server once the first stops answering.
func TestLearnsServersAndFailsOver(t *testing.T) {
	first, second := backend(t, "first"), backend(t, "second")
	secondPort := second.Addr().(*net.TCPAddr).Port
	state := filepath.Join(t.TempDir(), "servers.json")
	lb := New(Config{
		Listen: "127.0.0.1:0", Server: first.Addr().String(), StateFile: state,
		Clients: kubeclient.NewSharedFor(fake.NewClientset(kubernetesSlice(secondPort))),
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := lb.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer lb.Stop(context.Background())
	if got := answer(t, lb.Addr()); got != "first" {
		t.Fatalf("first connection reached %q, want the server given", got)
	}
	want := "127.0.0.1:" + strconv.Itoa(secondPort)
	deadline := time.Now().Add(10 * time.Second)
	for len(lb.Servers()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("servers %v: the endpoints were not learnt", lb.Servers())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if saved, err := os.ReadFile(state); err != nil || !strings.Contains(string(saved), want) {
		t.Errorf("saved %s, %v; want %s in it", saved, err, want)
	}
	first.Close()
	if got := answer(t, lb.Addr()); got != "second" {
		t.Fatalf("after the first server died, a connection reached %q", got)
	}

	// Restarted with only the dead server given, it uses the saved list.
	lb2 := New(Config{
		Listen: "127.0.0.1:0", Server: first.Addr().String(), StateFile: state,
		Clients: kubeclient.NewSharedFor(fake.NewClientset()),
	})
	if err := lb2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer lb2.Stop(context.Background())
	if got := answer(t, lb2.Addr()); got != "second" {
		t.Fatalf("restarted, a connection reached %q; want the saved server", got)
	}
}
