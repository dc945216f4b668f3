// Watermill redisstream (the version compat/watermill pins) over a go-redis UniversalClient given the three node
// addresses, which makes it a ClusterClient: topics are streams spread over every node, published and consumed
// through consumer groups across the cluster. Run by compat/cluster/run.sh with RILL_CLUSTER set.
package cluster

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

func TestWatermillAcrossTheCluster(t *testing.T) {
	eachProtocol(t, func(t *testing.T, proto int) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		client := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: nodes(t), Protocol: proto})
		defer client.Close()
		if _, ok := client.(*redis.ClusterClient); !ok {
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
		}, watermill.NopLogger{})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()

		const topics, perTopic = 9, 5
		masters := map[string]bool{}
		base := fmt.Sprintf("compat:watermill:%d:%d", proto, time.Now().UnixNano())
		want := map[string][]string{}
		got := map[string][]string{}
		channels := map[string]<-chan *message.Message{}
		for i := 0; i < topics; i++ {
			topic := fmt.Sprintf("%s:%d", base, i)
			ch, err := sub.Subscribe(ctx, topic)
			if err != nil {
				t.Fatalf("Subscribe %s: %v", topic, err)
			}
			channels[topic] = ch
			m, err := client.(*redis.ClusterClient).MasterForKey(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			masters[m.Options().Addr] = true
		}
		for topic := range channels {
			for j := 0; j < perTopic; j++ {
				msg := message.NewMessage(watermill.NewUUID(), []byte(strconv.Itoa(j)))
				if err := pub.Publish(topic, msg); err != nil {
					t.Fatalf("Publish %s: %v", topic, err)
				}
				want[topic] = append(want[topic], msg.UUID)
			}
		}
		for topic, ch := range channels {
			for len(got[topic]) < perTopic {
				select {
				case msg := <-ch:
					got[topic] = append(got[topic], msg.UUID)
					msg.Ack()
				case <-ctx.Done():
					t.Fatalf("%s: got %d of %d messages", topic, len(got[topic]), perTopic)
				}
			}
		}
		for topic := range want {
			w, g := append([]string{}, want[topic]...), append([]string{}, got[topic]...)
			sort.Strings(w)
			sort.Strings(g)
			if fmt.Sprint(w) != fmt.Sprint(g) {
				t.Fatalf("%s: published %v, received %v", topic, w, g)
			}
		}
		if len(masters) != 3 {
			t.Fatalf("%d topics landed on %d nodes, want 3", topics, len(masters))
		}
		// Acked: nothing left pending in any group, on any node.
		deadline := time.Now().Add(10 * time.Second)
		for topic := range channels {
			for {
				p, err := client.XPending(ctx, topic, "workers").Result()
				if err != nil {
					t.Fatalf("XPENDING %s: %v", topic, err)
				}
				if p.Count == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %d entries still pending after acks", topic, p.Count)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
}
