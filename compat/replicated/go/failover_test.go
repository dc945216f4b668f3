// Watermill redisstream (the version compat/watermill pins) over a go-redis UniversalClient given the three nodes of
// a replicated shard (cluster-raft yes, `rill cluster create --replicas 2`): messages are published and consumed
// through a consumer group while the shard's leader is killed with SIGKILL mid-run. Every message whose Publish
// returned without error must be delivered to the group (at least once: Watermill redelivers what was not acked),
// and the subscriber must end with nothing pending. The publisher retries a failed Publish, as an application
// would; go-redis v9.12 learns of the new leader at its periodic topology reload (10 s, not configurable in this
// version; newer ones take ClusterStateReloadInterval, see the README's Replicated shards). Run by compat/replicated/run.sh with
// RILL_CLUSTER set.
package replicated

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

func nodes(t *testing.T) []string {
	addrs := strings.Fields(os.Getenv("RILL_CLUSTER"))
	if len(addrs) != 3 {
		t.Fatalf("RILL_CLUSTER must list the three nodes, got %q", os.Getenv("RILL_CLUSTER"))
	}
	return addrs
}

// The process id of the node serving `key`'s slot (the shard's leader), from INFO server on that node.
func leaderPid(ctx context.Context, t *testing.T, c *redis.ClusterClient, key string) (string, int) {
	master, err := c.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	info, err := master.Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			if err != nil {
				t.Fatal(err)
			}
			return master.Options().Addr, pid
		}
	}
	t.Fatal("INFO server has no process_id")
	return "", 0
}

func TestWatermillSurvivesTheLeadersKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: nodes(t)})
	defer client.Close()
	cluster, ok := client.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("UniversalClient with three addresses is a %T, want a ClusterClient", client)
	}
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: client}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client:        client,
		ConsumerGroup: "workers",
		Consumer:      "w1",
		BlockTime:     100 * time.Millisecond,
		// What was delivered but not acked when the leader died is claimed back soon.
		ClaimInterval: time.Second,
		MaxIdleTime:   2 * time.Second,
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	topic := fmt.Sprintf("compat:failover:%d", time.Now().UnixNano())
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	received := map[string]int{}
	go func() {
		for msg := range ch {
			mu.Lock()
			received[msg.UUID]++
			mu.Unlock()
			msg.Ack()
		}
	}()

	const total, killAt = 300, 100
	published := []string{}
	failedPublishes := 0
	var killedAddr string
	for i := 0; i < total; i++ {
		if i == killAt {
			addr, pid := leaderPid(ctx, t, cluster, topic)
			killedAddr = addr
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatalf("kill -9 %d (leader %s): %v", pid, addr, err)
			}
			t.Logf("killed the leader %s (pid %d) after %d messages", addr, pid, i)
		}
		msg := message.NewMessage(watermill.NewUUID(), []byte(strconv.Itoa(i)))
		for {
			err := pub.Publish(topic, msg)
			if err == nil {
				break
			}
			failedPublishes++
			if ctx.Err() != nil {
				t.Fatalf("message %d never published: %v", i, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		published = append(published, msg.UUID)
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("%d publishes failed and were retried around the failover", failedPublishes)

	// Every acknowledged publish is delivered.
	for {
		mu.Lock()
		missing := 0
		for _, id := range published {
			if received[id] == 0 {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d published messages never delivered", missing, len(published))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The new leader serves the topic, and what was delivered is acked: nothing pending.
	addr, _ := leaderPid(ctx, t, cluster, topic)
	if addr == killedAddr {
		t.Fatalf("the topic is still served by the killed node %s", addr)
	}
	for {
		p, err := client.XPending(ctx, topic, "workers").Result()
		if err == nil && p.Count == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("entries still pending after every message was delivered: %v %v", p, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	length, err := client.XLen(ctx, topic).Result()
	if err != nil {
		t.Fatal(err)
	}
	if length < int64(len(published)) {
		t.Fatalf("the stream holds %d entries, fewer than the %d acknowledged publishes", length, len(published))
	}
}
