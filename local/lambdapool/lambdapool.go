// Package lambdapool runs a Go Lambda handler the way the Lambda service
// runs a function: each call on an instance that serves one call at a time,
// new instances for concurrent calls (Lambda scales out), idle ones reused.
// A handler built by lambda.NewHandler is not safe for concurrent use: its
// output buffer comes from a pool and goes back to it when Invoke returns,
// while the caller still reads the bytes. The local task bridge and the
// local API Gateway both call handlers through a Pool.
package lambdapool

import (
	"bytes"
	"context"
	"sync"

	"github.com/aws/aws-lambda-go/lambda"
)

// Pool is one function's instances.
type Pool struct {
	factory func() (lambda.Handler, error)
	mu      sync.Mutex
	idle    []*Instance
	one     *Instance
}

// Instance is one execution environment of the function.
type Instance struct {
	mu sync.Mutex
	h  lambda.Handler
	// Warm is false until the instance has served a call: its first call
	// is the cold start.
	Warm bool
}

// New returns a pool that makes a new instance with factory whenever a call
// finds none idle.
func New(factory func() (lambda.Handler, error)) *Pool { return &Pool{factory: factory} }

// Single returns a pool of the one given instance: concurrent calls queue.
func Single(h lambda.Handler) *Pool { return &Pool{one: &Instance{h: h}} }

// Acquire returns an instance for one call; Release it after.
func (p *Pool) Acquire() (*Instance, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		in := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return in, nil
	}
	if p.factory == nil {
		in := p.one
		p.mu.Unlock()
		in.mu.Lock()
		return in, nil
	}
	p.mu.Unlock()
	h, err := p.factory()
	if err != nil {
		return nil, err
	}
	return &Instance{h: h}, nil
}

// Release returns the instance after its call.
func (p *Pool) Release(in *Instance) {
	in.Warm = true
	if p.factory == nil {
		in.mu.Unlock()
		return
	}
	p.mu.Lock()
	p.idle = append(p.idle, in)
	p.mu.Unlock()
}

// Invoke runs one call on the instance and returns a copy of its output
// (the handler's own buffer goes back to its pool).
func (in *Instance) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	out, err := in.h.Invoke(ctx, payload)
	return bytes.Clone(out), err
}

// Invoke runs one call on some instance.
func (p *Pool) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	in, err := p.Acquire()
	if err != nil {
		return nil, err
	}
	defer p.Release(in)
	return in.Invoke(ctx, payload)
}
