// go-redis ClusterClient, unchanged, while `rill cluster reshard` moves the slot its streams live in to another
// node and back: producers keep adding, a consumer group keeps reading and acknowledging through the -ASK /
// -TRYAGAIN / -MOVED redirections of the move. Afterwards every acknowledged XADD is in the stream once, was
// delivered to the group once and acknowledged, and nothing is left pending. Needs RILL_BIN (the rill binary
// compat/run built) for `rill cluster reshard`.
package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A hash tag whose slot is `slot`, found by asking the cluster (CLUSTER KEYSLOT), pipelined.
func tagForSlot(ctx context.Context, t *testing.T, c *redis.ClusterClient, slot int64) string {
	for base := 0; base < 200000; base += 1000 {
		pipe := c.Pipeline()
		cmds := make([]*redis.IntCmd, 1000)
		for i := range cmds {
			cmds[i] = pipe.ClusterKeySlot(ctx, fmt.Sprintf("{m%d}", base+i))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		for i, cmd := range cmds {
			if cmd.Val() == slot {
				return fmt.Sprintf("m%d", base+i)
			}
		}
	}
	t.Fatalf("no tag with slot %d", slot)
	return ""
}

// The node serving `slot` (address and id), from CLUSTER SLOTS.
func ownerOf(ctx context.Context, t *testing.T, c *redis.ClusterClient, slot int) (string, string) {
	slots, err := c.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if s.Start <= slot && slot <= s.End {
			return s.Nodes[0].Addr, s.Nodes[0].ID
		}
	}
	t.Fatalf("slot %d is not served", slot)
	return "", ""
}

func reshard(t *testing.T, seed, from, to string) {
	bin := os.Getenv("RILL_BIN")
	if bin == "" {
		t.Fatal("RILL_BIN must name the rill binary")
	}
	out, err := exec.Command(bin, "cluster", "reshard", seed, "--from", from, "--to", to, "--slots", "1", "--yes").CombinedOutput()
	if err != nil {
		t.Fatalf("rill cluster reshard: %v\n%s", err, out)
	}
}

func TestReshardUnderLoad(t *testing.T) {
	ctx := context.Background()
	addrs := nodes(t)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, MaxRedirects: 16})
	defer c.Close()

	// The slot moved is slot 0, the lowest of its owner (reshard moves the source's lowest first); once
	// moved it is the lowest of the receiving node too, so the same command brings it back.
	home, homeID := ownerOf(ctx, t, c, 0)
	var otherID string
	slots, err := c.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if s.Nodes[0].ID != homeID {
			otherID = s.Nodes[0].ID
			break
		}
	}
	tag := tagForSlot(ctx, t, c, 0)
	streams := make([]string, 5)
	for i := range streams {
		streams[i] = fmt.Sprintf("{%s}:reshard:%d:%d", tag, os.Getpid(), i)
		if err := c.XGroupCreateMkStream(ctx, streams[i], "g", "$").Err(); err != nil {
			t.Fatal(err)
		}
	}

	var (
		mu       sync.Mutex
		acked    = map[string]string{} // "stream id" -> value
		received = map[string]int{}
		errs     []string
		stop     atomic.Bool
		seq      atomic.Int64
		wg       sync.WaitGroup
	)
	// Some history first, so that each move carries a few MB of entries, not just the newest.
	filler := strings.Repeat("x", 100)
	for _, s := range streams {
		pipe := c.Pipeline()
		cmds := make([]*redis.StringCmd, 4000)
		for i := range cmds {
			cmds[i] = pipe.XAdd(ctx, &redis.XAddArgs{Stream: s, Values: []any{"n", fmt.Sprint(-i - 1), "pad", filler}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		for i, cmd := range cmds {
			acked[s+" "+cmd.Val()] = fmt.Sprint(-i - 1)
		}
	}
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 20 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for !stop.Load() {
				n := seq.Add(1)
				s := streams[n%int64(len(streams))]
				v := fmt.Sprint(n)
				id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: s, Values: []any{"n", v}}).Result()
				if err != nil {
					fail("XADD %s: %v", s, err)
					continue
				}
				mu.Lock()
				acked[s+" "+id] = v
				mu.Unlock()
			}
		}(p)
	}
	var consumers sync.WaitGroup
	var draining atomic.Bool
	for i := 0; i < 2; i++ {
		consumers.Add(1)
		go func(i int) {
			defer consumers.Done()
			idle := 0
			for {
				// Streams of one slot: one XREADGROUP reads them all.
				args := append([]string{}, streams...)
				for range streams {
					args = append(args, ">")
				}
				res, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{
					Group: "g", Consumer: fmt.Sprintf("c%d", i), Streams: args, Count: 50, Block: 100 * time.Millisecond,
				}).Result()
				if err == redis.Nil {
					if draining.Load() {
						idle++
						if idle > 5 {
							return
						}
					}
					continue
				}
				if err != nil {
					fail("XREADGROUP: %v", err)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				idle = 0
				for _, st := range res {
					ids := make([]string, 0, len(st.Messages))
					mu.Lock()
					for _, m := range st.Messages {
						received[st.Stream+" "+m.ID]++
						ids = append(ids, m.ID)
					}
					mu.Unlock()
					if err := c.XAck(ctx, st.Stream, "g", ids...).Err(); err != nil {
						fail("XACK %s: %v", st.Stream, err)
					}
				}
			}
		}(i)
	}

	time.Sleep(300 * time.Millisecond)
	reshard(t, addrs[0], homeID, otherID)
	if addr, _ := ownerOf(ctx, t, c, 0); addr == home {
		t.Fatalf("slot 0 still served by %s after the reshard", home)
	}
	time.Sleep(300 * time.Millisecond)
	reshard(t, addrs[0], otherID, homeID)
	if addr, _ := ownerOf(ctx, t, c, 0); addr != home {
		t.Fatalf("slot 0 served by %s after moving it back, want %s", addr, home)
	}
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	draining.Store(true)
	consumers.Wait()

	if len(errs) > 0 {
		t.Fatalf("client errors during the moves:\n%s", strings.Join(errs, "\n"))
	}
	if len(acked) < 20100 {
		t.Fatalf("only %d XADDs acknowledged: the load did not run", len(acked))
	}
	// Every acknowledged entry is in its stream with its value, and nothing else is.
	total := 0
	for _, s := range streams {
		entries, err := c.XRange(ctx, s, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		total += len(entries)
		for _, e := range entries {
			if v, ok := acked[s+" "+e.ID]; !ok || e.Values["n"] != v {
				t.Fatalf("%s %s: value %v, acknowledged %q (%v)", s, e.ID, e.Values["n"], v, ok)
			}
		}
		pending, err := c.XPending(ctx, s, "g").Result()
		if err != nil {
			t.Fatal(err)
		}
		if pending.Count != 0 {
			t.Fatalf("%s: %d entries still pending", s, pending.Count)
		}
	}
	if total != len(acked) {
		t.Fatalf("streams hold %d entries, %d were acknowledged", total, len(acked))
	}
	// Every acknowledged entry was delivered to the group exactly once.
	var missing, twice []string
	for k := range acked {
		switch received[k] {
		case 0:
			missing = append(missing, k)
		case 1:
		default:
			twice = append(twice, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(twice)
	if len(missing) > 0 || len(twice) > 0 || len(received) != len(acked) {
		t.Fatalf("deliveries: %d acknowledged, %d received; never delivered %v; delivered twice %v",
			len(acked), len(received), missing, twice)
	}
	t.Logf("%d entries (20,000 before the moves) added and consumed across two moves of slot 0 (%s -> %s -> %s)", len(acked), homeID[:8], otherID[:8], homeID[:8])
	for _, s := range streams {
		c.Del(ctx, s)
	}
}
