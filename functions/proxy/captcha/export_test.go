package captcha

import (
	"net/http"
	"time"
)

// Busy takes every verification slot of h (a handler New returned) and
// shortens its wait for one to wait; release gives the slots back.
func Busy(h http.Handler, wait time.Duration) (release func()) {
	c := h.(*handler)
	c.slotWait = wait
	for range cap(c.verify) {
		c.verify <- struct{}{}
	}
	return func() {
		for range cap(c.verify) {
			<-c.verify
		}
	}
}
