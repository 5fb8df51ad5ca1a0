// Command floor is the memory floor of a speaker: a Go process with
// client-go that watches what a speaker watches (Services, EndpointSlices,
// Nodes) into plain informer caches, with the speaker's GOMEMLIMIT, and
// does nothing else. BenchmarkHostileMemory runs it beside the speakers:
// the difference is what the speaker's own work holds.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig")
	flag.Parse()
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	f := informers.NewSharedInformerFactory(c, 0)
	f.Core().V1().Services().Informer()
	f.Discovery().V1().EndpointSlices().Informer()
	f.Core().V1().Nodes().Informer()
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	fmt.Println("synced")
	<-ctx.Done()
}
