// Package message holds meshpool's wire contracts: the NATS subjects and the
// JSON bodies that travel on them. Every decoder bounds the input size, rejects
// wrongly typed fields and validates what it returns, so a malformed message
// becomes an error to log and count, never a crash or a half-filled struct.
// A submission, which comes from anyone, is decoded strictly: its keys are
// checked against a table (fields.go), so a missing number or a misspelt key
// is refused by name. Messages between nodes ignore unknown keys, so a newer
// node can add one.
package message
