package message

// Work is the demo's work rule, the article's: a task's result is its
// number times three. Workers compute it; the master records a result only
// if it is Work of the task's number. Submit.Validate bounds the number so
// that it cannot overflow.
func Work(number int64) int64 { return number * 3 }
