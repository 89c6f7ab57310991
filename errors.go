package meshpool

import "errors"

// Permanent marks err as permanent: no more attempts, the task fails now,
// whatever attempts it has left (as asynq's SkipRetry and River's
// JobCancel). Return it from Work for an error no other attempt can mend:
// a payload that can never be worked, a thing that no longer exists. The
// error's text is err's, and errors.Is and errors.As still see err and
// what it wraps. Permanent(nil) is nil.
//
// Any other error is the attempt's failure, and the task is tried again
// while it has attempts left. A panic in Work is never permanent. A
// command handler (package command) makes its error permanent by exiting
// with command.ExitPermanent.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked by
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// permanentError is an error marked by Permanent.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

func (e *permanentError) Unwrap() error { return e.err }
