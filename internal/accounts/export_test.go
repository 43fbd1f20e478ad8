package accounts

import (
	"errors"
	"sync"

	"github.com/surge-vote/surge/internal/surge"
)

// HoldHashSlots takes every hashing slot of s until the returned function
// is called (once or more).
func HoldHashSlots(s *Service) (release func()) {
	for range cap(s.hasher.slots) {
		s.hasher.slots <- struct{}{}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			for range cap(s.hasher.slots) {
				<-s.hasher.slots
			}
		})
	}
}

func asError(err error, target **surge.Error) bool { return errors.As(err, target) }
