// go-redis ClusterClient against a three-node Rill cluster (made by `rill cluster create`), unchanged: the
// client learns the slots from CLUSTER SLOTS, routes XADD / XGROUP / XREADGROUP / XACK for streams spread over
// every node, follows MOVED when seeded with one node only, and blocks in XREADGROUP on a stream another node
// serves. Run by compat/cluster/run.sh with RILL_CLUSTER="host:port host:port host:port".
package cluster

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func nodes(t *testing.T) []string {
	addrs := strings.Fields(os.Getenv("RILL_CLUSTER"))
	if len(addrs) != 3 {
		t.Fatalf("RILL_CLUSTER must list the three nodes, got %q", os.Getenv("RILL_CLUSTER"))
	}
	return addrs
}

func eachProtocol(t *testing.T, f func(t *testing.T, proto int)) {
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("resp%d", proto), func(t *testing.T) { f(t, proto) })
	}
}

func TestSlotsCoverTheCluster(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: nodes(t), Protocol: proto})
		defer c.Close()
		slots, err := c.ClusterSlots(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(slots) != 3 {
			t.Fatalf("want 3 slot ranges, got %v", slots)
		}
		covered := 0
		for _, s := range slots {
			covered += s.End - s.Start + 1
			if len(s.Nodes) != 1 || s.Nodes[0].ID == "" {
				t.Fatalf("range %v: want one node with an id", s)
			}
		}
		if covered != 16384 {
			t.Fatalf("slots cover %d, want 16384", covered)
		}
	})
}

func TestStreamsAcrossNodes(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: nodes(t), Protocol: proto})
		defer c.Close()
		prefix := fmt.Sprintf("compat:go:%d:%d", proto, time.Now().UnixNano())
		masters := map[string]bool{}
		for i := 0; i < 30; i++ {
			stream := fmt.Sprintf("%s:%d", prefix, i)
			for j := 0; j < 3; j++ {
				if err := c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: map[string]any{"n": j}}).Err(); err != nil {
					t.Fatalf("XADD %s: %v", stream, err)
				}
			}
			if err := c.XGroupCreate(ctx, stream, "g", "0").Err(); err != nil {
				t.Fatalf("XGROUP CREATE %s: %v", stream, err)
			}
			got, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{stream, ">"}, Count: 10}).Result()
			if err != nil {
				t.Fatalf("XREADGROUP %s: %v", stream, err)
			}
			if len(got) != 1 || len(got[0].Messages) != 3 {
				t.Fatalf("XREADGROUP %s: want 3 entries, got %v", stream, got)
			}
			ids := []string{}
			for _, m := range got[0].Messages {
				ids = append(ids, m.ID)
			}
			if n, err := c.XAck(ctx, stream, "g", ids...).Result(); err != nil || n != 3 {
				t.Fatalf("XACK %s: %d, %v", stream, n, err)
			}
			pending, err := c.XPending(ctx, stream, "g").Result()
			if err != nil || pending.Count != 0 {
				t.Fatalf("XPENDING %s: %v, %v", stream, pending, err)
			}
			m, err := c.MasterForKey(ctx, stream)
			if err != nil {
				t.Fatal(err)
			}
			masters[m.Options().Addr] = true
		}
		if len(masters) != 3 {
			t.Fatalf("30 streams landed on %d nodes, want all 3: %v", len(masters), masters)
		}
	})
}

func TestOneSeedFollowsMoved(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		addrs := nodes(t)
		// A plain client to one node sees the redirection itself.
		plain := redis.NewClient(&redis.Options{Addr: addrs[0], Protocol: proto})
		defer plain.Close()
		seeded := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs[:1], Protocol: proto})
		defer seeded.Close()
		moved := 0
		for i := 0; i < 20; i++ {
			key := fmt.Sprintf("compat:go:seed:%d:%d", proto, i)
			if err := seeded.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []any{"f", "v"}}).Err(); err != nil {
				t.Fatalf("XADD %s through one seed: %v", key, err)
			}
			if n, err := seeded.XLen(ctx, key).Result(); err != nil || n != 1 {
				t.Fatalf("XLEN %s: %d, %v", key, n, err)
			}
			err := plain.XLen(ctx, key).Err()
			if err != nil {
				if !strings.HasPrefix(err.Error(), "MOVED ") {
					t.Fatalf("XLEN %s on %s: %v", key, addrs[0], err)
				}
				moved++
			}
		}
		if moved == 0 {
			t.Fatal("no key of 20 was redirected from the first node")
		}
	})
}

func TestBlockedReadOnAnotherNode(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		ctx := context.Background()
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: nodes(t), Protocol: proto})
		defer c.Close()
		stream := fmt.Sprintf("compat:go:block:%d:%d", proto, time.Now().UnixNano())
		if err := c.XGroupCreateMkStream(ctx, stream, "g", "$").Err(); err != nil {
			t.Fatal(err)
		}
		done := make(chan []redis.XStream, 1)
		errs := make(chan error, 1)
		go func() {
			got, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{stream, ">"}, Block: 5 * time.Second}).Result()
			if err != nil {
				errs <- err
				return
			}
			done <- got
		}()
		time.Sleep(200 * time.Millisecond)
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: stream, ID: "1-1", Values: []any{"f", "v"}}).Err(); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-done:
			if len(got) != 1 || len(got[0].Messages) != 1 || got[0].Messages[0].ID != "1-1" {
				t.Fatalf("woken with %v", got)
			}
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(10 * time.Second):
			t.Fatal("blocked XREADGROUP was never woken")
		}
	})
}
