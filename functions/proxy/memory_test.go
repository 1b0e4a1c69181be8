package proxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate.dev/tollgate/shared/users"
)

// peakMemory samples the Go runtime's mapped memory (heap, stacks and
// runtime structures, less what was returned to the OS) until stop.
func peakMemory(stop <-chan struct{}) *atomic.Uint64 {
	var peak atomic.Uint64
	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	go func() {
		for {
			metrics.Read(samples)
			if v := samples[0].Value.Uint64() - samples[1].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return &peak
}

// Four concurrent 30 MB hostile bodies ("max_tokens":999999 repeated, all
// clamped) keep the process well under the deploy's 512 MiB instance: the
// proxy holds each body once and edits it in place.
func TestHostileBodiesStayInMemoryBounds(t *testing.T) {
	var received atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		received.Add(n)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"c","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`)
	}))
	defer upstream.Close()
	e := newEnv(t, map[string]string{"OPENAI_BASE_URL": upstream.URL})
	tk := e.user(users.Patch{})

	const size = 30 << 20
	unit := []byte(`"max_tokens":999999,`)
	var b bytes.Buffer
	b.Grow(size + 64)
	b.WriteString(`{"model":"gpt-4o",`)
	for b.Len() < size-len(unit) {
		b.Write(unit)
	}
	b.WriteString(`"messages":[]}`)
	body := b.Bytes()

	runtime.GC()
	stop := make(chan struct{})
	peak := peakMemory(stop)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/proxy/openai/v1/chat/completions", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tk)
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	close(stop)
	if received.Load() < 4*(size/2) {
		t.Fatalf("the upstream received %d bytes: the bodies did not go through", received.Load())
	}
	p := peak.Load()
	t.Logf("peak Go memory with four 30 MB hostile bodies in flight: %d MiB", p>>20)
	if p > 512<<20 {
		t.Errorf("peak %d MiB, over the 512 MiB instance", p>>20)
	}
}
