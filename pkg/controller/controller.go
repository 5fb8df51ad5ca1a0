package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/microk8s-metallb/metallb/pkg/allocator"
	"github.com/microk8s-metallb/metallb/pkg/config"
	"github.com/microk8s-metallb/metallb/pkg/iprange"
	"github.com/microk8s-metallb/metallb/pkg/k8s"
	"github.com/microk8s-metallb/metallb/pkg/metrics"
)

// Event reasons on Services.
const (
	ReasonAllocated        = "IPAllocated"
	ReasonAllocFailed      = "AllocationFailed"
	ReasonChanged          = "IPChanged"
	ReasonCleared          = "ClearAssignment"
	ReasonPoolNearlyFull   = "PoolNearlyFull"
	ReasonPoolFull         = "PoolExhausted"
	nearlyFullThreshold    = 0.9
	defaultWorkers         = 8
	maxRequeueBeforeGiveUp = 15
)

// Options configure the controller.
type Options struct {
	Client    kubernetes.Interface
	Log       *slog.Logger
	Metrics   *metrics.Registry
	Namespace string // of the ConfigMap; default metallb-system
	ConfigMap string // default config
	// LBClass: the loadBalancerClass we serve; empty: only class-less Services.
	LBClass string
	Workers int
	// Level, when set, follows the ConfigMap's log-level annotation
	// (k8s.LogLevelAnnotation), back to BaseLevel without it.
	Level     *slog.LevelVar
	BaseLevel slog.Level
	// Dynamic, when set, reads the metallb.io resources of Namespace
	// beside the ConfigMap.
	Dynamic dynamic.Interface
	// Started, when set, is called once, when the caches have synced and
	// the component is ready (the binary gives back there the pages of
	// itself that only start-up touched: memtrim.ReleaseBinaryPages).
	Started func()
}

// Controller assigns addresses to LoadBalancer Services.
type Controller struct {
	opts     Options
	log      *slog.Logger
	client   kubernetes.Interface
	recorder record.EventRecorder
	queue    workqueue.TypedRateLimitingInterface[string]
	lister   corelisters.ServiceLister
	nsLister corelisters.NamespaceLister // their labels: pools' namespaceSelectors
	watcher  *k8s.ConfigWatcher
	accepted *k8s.AcceptedWriter
	status   *k8s.StatusWriter // nil without Dynamic
	m        *ctrlMetrics

	mu       sync.Mutex // guards everything below
	alloc    *allocator.Allocator
	inForce  *config.Config // the config the allocator runs on
	restored bool
	pending  map[string]bool // Services that failed for lack of room
	poolWarn map[string]int  // last usage level warned about per pool (0, 90, 100)
}

// New builds a controller; Run starts it.
func New(ctx context.Context, o Options) *Controller {
	if o.Workers <= 0 {
		o.Workers = defaultWorkers
	}
	c := &Controller{
		opts:     o,
		log:      o.Log,
		client:   o.Client,
		recorder: k8s.NewRecorder(ctx, o.Client, k8s.ControllerComponent),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "services"}),
		alloc:    allocator.New(),
		pending:  map[string]bool{},
		poolWarn: map[string]int{},
		m:        newMetrics(o.Metrics),
	}
	if o.Namespace == "" {
		o.Namespace = k8s.DefaultNamespace
	}
	if o.ConfigMap == "" {
		o.ConfigMap = k8s.DefaultConfigMap
	}
	c.opts = o
	c.accepted = &k8s.AcceptedWriter{Client: o.Client, Namespace: o.Namespace, Name: k8s.AcceptedName(o.ConfigMap), Log: o.Log}
	c.watcher = k8s.NewConfigWatcher(k8s.ConfigWatcherOptions{
		Client: o.Client, Namespace: o.Namespace, Name: o.ConfigMap, Log: o.Log,
		Recorder: c.recorder, Metrics: o.Metrics, Level: o.Level, BaseLevel: o.BaseLevel,
		Install: c.install, OnState: c.publishState, Dynamic: o.Dynamic,
	})
	if o.Dynamic != nil {
		c.status = &k8s.StatusWriter{Dynamic: o.Dynamic, Namespace: o.Namespace, State: k8s.ControllerState, Log: o.Log}
	}
	return c
}

// Run runs until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	defer c.queue.ShutDown()
	factory := k8s.NewInformerFactory(c.client, &corev1.Service{}) // Services alone
	svcInf := factory.Core().V1().Services()
	c.lister = svcInf.Lister()
	_, err := svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueue,
		UpdateFunc: func(old, obj any) {
			if k8s.Changed(old, obj) {
				c.enqueue(obj)
			}
		},
		DeleteFunc: c.enqueue,
	})
	if err != nil {
		return fmt.Errorf("watch services: %w", err)
	}
	// Namespaces' labels (a pool's namespaceSelectors): a change re-judges
	// the Services of that namespace. Few objects, listed whole.
	nsInf := factory.Core().V1().Namespaces()
	c.nsLister = nsInf.Lister()
	_, err = nsInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(old, obj any) {
			o, ok1 := old.(*corev1.Namespace)
			n, ok2 := obj.(*corev1.Namespace)
			if ok1 && ok2 && !maps.Equal(o.Labels, n.Labels) {
				svcs, _ := c.lister.Services(n.Name).List(labels.Everything())
				for _, s := range svcs {
					c.enqueue(s)
				}
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watch namespaces: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	c.log.Info("waiting for caches")
	if !cache.WaitForCacheSync(ctx.Done(), svcInf.Informer().HasSynced, nsInf.Informer().HasSynced) {
		return ctx.Err()
	}
	c.log.Info("caches synced", "services", len(c.listAll()))
	// Run on the last accepted config first, so that the ConfigMap (which
	// may have changed, or broken, while no controller ran) is judged
	// against the assignments it would change.
	c.seed(ctx)
	go c.accepted.Run(ctx)
	if c.status != nil {
		go c.status.Run(ctx)
	}
	go c.watcher.Run(ctx)
	go c.watchSpeakers(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), c.watcher.HasSynced) {
		return ctx.Err()
	}
	if !c.watcher.Seen() {
		c.watcher.MarkMissing() // says so, and publishes the stale state
	} else if c.watcher.Stale() {
		c.log.Warn("the ConfigMap is refused: running on the last accepted configuration",
			"configmap", c.opts.Namespace+"/"+c.opts.ConfigMap, "accepted", c.opts.Namespace+"/"+k8s.AcceptedName(c.opts.ConfigMap))
	}
	if c.opts.Metrics != nil {
		c.opts.Metrics.SetReady(true)
	}
	if c.opts.Started != nil {
		c.opts.Started()
	}
	var wg sync.WaitGroup
	for range c.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.processNext(ctx) {
			}
		}()
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

func (c *Controller) enqueue(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		c.log.Error("cannot key object", "error", err)
		return
	}
	c.queue.Add(key)
}

// namespaceLabels returns the labels of namespace ns, from the cache.
func (c *Controller) namespaceLabels(ns string) map[string]string {
	if c.nsLister == nil {
		return nil
	}
	n, err := c.nsLister.Get(ns)
	if err != nil {
		return nil
	}
	return n.Labels
}

func (c *Controller) listAll() []*corev1.Service {
	svcs, _ := c.lister.List(labels.Everything())
	return svcs
}

func (c *Controller) processNext(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	err := c.sync(ctx, key)
	switch {
	case err == nil:
		c.queue.Forget(key)
	case c.queue.NumRequeues(key) < maxRequeueBeforeGiveUp:
		c.log.Warn("sync failed, will retry", "service", key, "error", err)
		c.queue.AddRateLimited(key)
	default:
		c.log.Error("sync failed, giving up until the Service changes", "service", key, "error", err)
		c.queue.Forget(key)
	}
	return true
}

// seed puts the last accepted config in force and re-learns every
// assignment under it, before the ConfigMap is judged.
func (c *Controller) seed(ctx context.Context) {
	name := k8s.AcceptedName(c.opts.ConfigMap)
	text, err := k8s.ConfigText(ctx, c.client, c.opts.Namespace, name)
	if err != nil || text == "" {
		if err != nil {
			c.log.Warn("cannot read the last accepted configuration", "error", err)
		}
		return
	}
	if err := c.watcher.Seed(text); err != nil {
		c.log.Error("the last accepted configuration does not parse: judging the ConfigMap on its own", "configmap", c.opts.Namespace+"/"+name, "error", err)
		return
	}
	cfg := c.watcher.Current()
	svcs := c.listAll()
	c.mu.Lock()
	c.alloc.SetConfig(cfg)
	c.inForce = cfg
	c.restore(svcs)
	c.restored = true
	c.updatePoolMetrics()
	c.mu.Unlock()
	c.log.Info("running on the last accepted configuration", "configmap", c.opts.Namespace+"/"+name, "pools", len(cfg.Pools))
}

// publishState publishes a verdict on the configuration: in the accepted
// copy, and in the ConfigurationState when the resources are served.
func (c *Controller) publishState(s k8s.ConfigState) {
	c.accepted.Set(s)
	if c.status != nil {
		c.status.SetState(!s.Stale, s.Reason)
	}
}

// install puts a new config in force, unless it would take or change the
// addresses Services hold and the ConfigMap does not allow that. The check
// and the switch happen under one lock, so no assignment slips between
// them. The first time, it also re-learns every assignment from Service
// status before anything new is assigned.
//
// MetalLB v0.12 refused such edits too ("new config not compatible with
// assigned IPs"); the annotation is the way to renumber on purpose.
func (c *Controller) install(cfg *config.Config, cm *corev1.ConfigMap) error {
	allow := cm.Annotations[k8s.AllowChangesAnnotation] == "true"
	svcs := c.listAll()
	c.mu.Lock()
	// The very first config (no accepted copy: a fresh install) has nothing
	// to be judged against; restore keeps what it can.
	var affected []allocator.Affected
	if c.inForce != nil {
		affected = allocator.Impact(c.inForce, cfg, c.alloc.Holdings())
	}
	pools, poolsAllow := c.heldPools(affected, c.poolAllows)
	if len(affected) > 0 && !allow && !poolsAllow {
		c.mu.Unlock()
		return &k8s.AddressChangeError{Affected: affected, Namespace: c.opts.Namespace, Name: c.opts.ConfigMap, Pools: pools}
	}
	c.alloc.SetConfig(cfg)
	c.inForce = cfg
	if !c.restored {
		c.restore(svcs)
		c.restored = true
	}
	c.updatePoolMetrics()
	c.mu.Unlock()
	if len(affected) > 0 {
		c.log.Warn("configuration accepted with address changes, as the ConfigMap allows: those Services move",
			"annotation", k8s.AllowChangesAnnotation, "services", len(affected))
	}
	if allow {
		c.consumeAllowance(cm)
	} else if len(affected) > 0 {
		for _, p := range slices.Sorted(maps.Keys(pools)) {
			c.consumePoolAllowance(p)
		}
	}
	for _, s := range svcs {
		c.enqueue(s)
	}
	return nil
}

// heldPools maps the IPAddressPools (resources) of the config in force
// whose addresses affected hold to those Services, and says whether each
// affected address is in such a pool annotated to allow the change (the
// per-pool form of the ConfigMap's opt-in). Caller holds c.mu.
func (c *Controller) heldPools(affected []allocator.Affected, allows func(pool string) bool) (map[string][]string, bool) {
	pools := map[string][]string{}
	allowed := len(affected) > 0
	for _, a := range affected {
		for _, ip := range a.IPs {
			var in *config.Pool
			for _, p := range c.inForce.Pools {
				if iprange.ContainsAny(p.Ranges, ip) {
					in = p
					break
				}
			}
			if in == nil || !in.Resource {
				allowed = false
				continue
			}
			if !slices.Contains(pools[in.Name], a.Service) {
				pools[in.Name] = append(pools[in.Name], a.Service)
			}
			if !allows(in.Name) {
				allowed = false
			}
		}
	}
	return pools, allowed
}

// poolAllows reports whether IPAddressPool name carries the allow
// annotation.
func (c *Controller) poolAllows(name string) bool {
	return c.watcher.ResourceAnnotation(config.KindIPAddressPool, name, k8s.AllowChangesAnnotation) == "true"
}

// consumePoolAllowance removes the allow annotation from IPAddressPool
// name once the change it allowed is in force (a pool being deleted goes
// with it).
func (c *Controller) consumePoolAllowance(name string) {
	if c.opts.Dynamic == nil || c.watcher.Deleting(config.KindIPAddressPool, name) ||
		c.watcher.ResourceAnnotation(config.KindIPAddressPool, name, k8s.AllowChangesAnnotation) == "" {
		return
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{k8s.AllowChangesAnnotation: nil}}})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.opts.Dynamic.Resource(k8s.ResourceGVRs[config.KindIPAddressPool]).Namespace(c.opts.Namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	switch {
	case err == nil:
		c.log.Info("the change the pool allowed is in force: its annotation is removed, so the next change is protected again",
			"ipaddresspool", c.opts.Namespace+"/"+name, "annotation", k8s.AllowChangesAnnotation)
	case apierrors.IsNotFound(err):
	default:
		c.log.Warn("cannot remove the allow annotation: it still allows the next change to renumber this pool's Services; remove it by hand",
			"ipaddresspool", c.opts.Namespace+"/"+name, "annotation", k8s.AllowChangesAnnotation, "error", err)
	}
}

// consumeAllowance removes the allow annotation from the ConfigMap once
// the edit it came with is in force: the opt-in is for that one edit, and
// every later edit is protected again. The patch names the version it saw,
// so a newer edit (with an annotation of its own) is left for its turn.
func (c *Controller) consumeAllowance(cm *corev1.ConfigMap) {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": cm.ResourceVersion,
		"annotations":     map[string]any{k8s.AllowChangesAnnotation: nil},
	}})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.client.CoreV1().ConfigMaps(cm.Namespace).Patch(ctx, cm.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	switch {
	case err == nil:
		c.log.Info("the edit allowed to change addresses is in force: its annotation is removed, so the next edit is protected again",
			"configmap", cm.Namespace+"/"+cm.Name, "annotation", k8s.AllowChangesAnnotation)
	case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		// A newer edit: judged on its own.
	default:
		c.log.Warn("cannot remove the allow annotation: it still allows the next edit to change addresses; remove it by hand",
			"configmap", cm.Namespace+"/"+cm.Name, "annotation", k8s.AllowChangesAnnotation, "error", err)
	}
}

// restore re-learns assignments from status, oldest Service first, so that if
// two Services claim one address the older keeps it. Caller holds c.mu.
func (c *Controller) restore(svcs []*corev1.Service) {
	n := 0
	for _, h := range k8s.Holdings(svcs, c.opts.LBClass, c.namespaceLabels) {
		if _, err := c.alloc.Restore(h.Service, h.IPs); err != nil {
			c.log.Warn("cannot keep the address in status", "service", h.Service.Key, "ip", ipList(h.IPs), "error", err)
			continue
		}
		n++
	}
	c.log.Info("re-learnt assignments from Service status", "services", n)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	start := time.Now()
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.lister.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.release(key)
		return nil
	}
	if err != nil {
		return err
	}
	if !k8s.Owned(svc, c.opts.LBClass) {
		return c.disown(ctx, svc, key)
	}
	c.mu.Lock()
	restored := c.restored
	c.mu.Unlock()
	if !restored {
		// No valid config yet: nothing can be assigned. The first config
		// re-queues every Service.
		return nil
	}
	current := k8s.IngressIPs(svc)
	req, err := allocator.ParseRequest(svc.Annotations, svc.Spec.LoadBalancerIP)
	if err != nil {
		c.fail(svc, key, err, current)
		return nil
	}
	c.mu.Lock()
	as, err := c.alloc.Assign(k8s.AllocatorService(svc, req, c.namespaceLabels), current)
	if err != nil {
		if errors.Is(err, allocator.ErrPoolExhausted) {
			c.pending[key] = true
		}
		_, held := c.alloc.Assigned(key)
		c.mu.Unlock()
		c.fail(svc, key, err, current)
		if !held && len(current) > 0 {
			// The address in status is no longer ours to give: take it back.
			return c.writeStatus(ctx, svc, nil, "")
		}
		return nil
	}
	delete(c.pending, key)
	warnReason, warn := c.poolLevelChange(as.Pool)
	c.updatePoolMetrics()
	c.mu.Unlock()

	if sameIPs(as.IPs, current) {
		c.m.setAssigned(key, as.Pool, as.IPs)
		if svc.Annotations[allocator.AnnotationAllocatedFrom] != as.Pool {
			// Held from before the annotation was written (or edited by
			// hand): one write shows the pool again.
			return c.writeStatus(ctx, svc, as.IPs, as.Pool)
		}
		return nil
	}
	if err := c.writeStatus(ctx, svc, as.IPs, as.Pool); err != nil {
		return err
	}
	c.m.setAssigned(key, as.Pool, as.IPs)
	c.m.latency.Observe(time.Since(start).Seconds())
	if len(current) == 0 {
		c.recorder.Eventf(svc, corev1.EventTypeNormal, ReasonAllocated, "Assigned IP [%s] from pool %q", ipList(as.IPs), as.Pool)
		c.log.Info("assigned", "service", key, "ip", ipList(as.IPs), "pool", as.Pool)
	} else {
		c.recorder.Eventf(svc, corev1.EventTypeWarning, ReasonChanged, "Moved from [%s] to [%s] (pool %q): the old address is not valid for this Service under the current config", ipList(current), ipList(as.IPs), as.Pool)
		c.log.Warn("moved", "service", key, "from", ipList(current), "ip", ipList(as.IPs), "pool", as.Pool)
	}
	if warn != "" {
		c.recorder.Event(svc, corev1.EventTypeWarning, warnReason, warn)
	}
	return nil
}

func (c *Controller) fail(svc *corev1.Service, key string, err error, current []netip.Addr) {
	c.m.failures.WithLabelValues(failureReason(err)).Inc()
	msg := "Failed to allocate IP: " + err.Error()
	if len(current) > 0 && !errors.Is(err, allocator.ErrNoConfig) {
		msg += fmt.Sprintf(" (keeping [%s] if it is still valid)", ipList(current))
	}
	c.recorder.Event(svc, corev1.EventTypeWarning, ReasonAllocFailed, msg)
	c.log.Warn("allocation failed", "service", key, "error", err)
}

func failureReason(err error) string {
	for _, e := range []struct {
		err    error
		reason string
	}{
		{allocator.ErrPoolExhausted, "pool_exhausted"},
		{allocator.ErrNoPool, "no_pool"},
		{allocator.ErrIPTaken, "ip_taken"},
		{allocator.ErrIPNotInPool, "ip_not_in_pool"},
		{allocator.ErrBadRequest, "bad_annotation"},
		{allocator.ErrNoConfig, "no_config"},
	} {
		if errors.Is(err, e.err) {
			return e.reason
		}
	}
	return "other"
}

// disown frees what a Service no longer needs (type or class changed).
func (c *Controller) disown(ctx context.Context, svc *corev1.Service, key string) error {
	c.mu.Lock()
	_, held := c.alloc.Assigned(key)
	c.mu.Unlock()
	if !held {
		return nil
	}
	c.release(key)
	c.recorder.Event(svc, corev1.EventTypeNormal, ReasonCleared, "Released the address: the Service is no longer a LoadBalancer of this class")
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && len(svc.Status.LoadBalancer.Ingress) > 0 && svc.DeletionTimestamp == nil {
		return c.writeStatus(ctx, svc, nil, "")
	}
	return nil
}

// release frees a Service's addresses and retries the Services waiting for
// room.
func (c *Controller) release(key string) {
	c.mu.Lock()
	_, held := c.alloc.Assigned(key)
	c.alloc.Release(key)
	c.m.setAssigned(key, "", nil)
	delete(c.pending, key)
	var retry []string
	if held {
		for k := range c.pending {
			retry = append(retry, k)
		}
		for _, p := range c.alloc.Pools() {
			c.poolLevelChange(p)
		}
		c.updatePoolMetrics()
	}
	c.mu.Unlock()
	if held {
		c.log.Info("released", "service", key)
		// A refused edit may have been refused for this Service's sake.
		c.watcher.Retry()
	}
	for _, k := range retry {
		c.queue.Add(k)
	}
}

// writeStatus sets status.loadBalancer.ingress, and the annotation naming
// the pool (allocator.AnnotationAllocatedFrom; none without addresses), with
// one merge patch on the status subresource: one request, no
// read-modify-write of the whole object. A Service's status subresource
// takes metadata changes too, so the pool costs no second write.
func (c *Controller) writeStatus(ctx context.Context, svc *corev1.Service, ips []netip.Addr, pool string) error {
	body := map[string]any{
		"status": map[string]any{"loadBalancer": map[string]any{"ingress": ingressFor(ips)}},
	}
	if len(ips) == 0 {
		pool = ""
	}
	if cur, has := svc.Annotations[allocator.AnnotationAllocatedFrom]; cur != pool || (has && pool == "") {
		var v any // null removes it
		if pool != "" {
			v = pool
		}
		body["metadata"] = map[string]any{"annotations": map[string]any{allocator.AnnotationAllocatedFrom: v}}
	}
	patch, err := json.Marshal(body)
	if err != nil {
		return err
	}
	_, err = c.client.CoreV1().Services(svc.Namespace).Patch(ctx, svc.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("update status of %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	c.m.statusWrites.Inc()
	return nil
}

// poolLevelChange returns an Event reason and message when a pool's use
// crosses 90% or 100% upwards (and re-arms when it drops back). Caller holds
// c.mu.
func (c *Controller) poolLevelChange(pool string) (reason, msg string) {
	size, inUse, ok := c.alloc.Usage(pool)
	if !ok || size == 0 {
		return "", ""
	}
	frac := float64(inUse) / size
	level := 0
	switch {
	case frac >= 1:
		level = 100
	case frac >= nearlyFullThreshold:
		level = 90
	}
	prev := c.poolWarn[pool]
	c.poolWarn[pool] = level
	switch {
	case level <= prev:
		return "", ""
	case level == 100:
		return ReasonPoolFull, fmt.Sprintf("pool %q is full: %d of %.0f addresses in use; new Services will stay <pending>", pool, inUse, size)
	}
	return ReasonPoolNearlyFull, fmt.Sprintf("pool %q is over 90%% used: %d of %.0f addresses", pool, inUse, size)
}
