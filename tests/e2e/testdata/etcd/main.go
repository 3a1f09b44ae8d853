// Command etcd is upstream etcd's own server, built from the etcd module hw
// already depends on: the external etcd of the datastore test.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
