// Package s3obj reads and writes the small objects the functions share in
// the data bucket (ban lists, coalesced commands, the reply outbox, leases)
// with the conditional writes S3 offers: If-Match on the ETag read, or
// If-None-Match: * to create. One place decides what "missing" and "lost a
// race" look like, and classifies every other error (shared/awserr).
package s3obj

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"sshguard-unban/shared/awserr"
	"sshguard-unban/shared/taskerr"
)

// ErrNotFound is returned (wrapped) when the object does not exist.
var ErrNotFound = errors.New("s3obj: object not found")

// ErrConflict is returned (wrapped) when a conditional write lost: the
// object changed (or appeared) since it was read.
var ErrConflict = errors.New("s3obj: object changed concurrently")

// Getter is the read half of the S3 client.
type Getter interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// Putter is the write half.
type Putter interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// API is what the writers use; *s3.Client implements it.
type API interface {
	Getter
	Putter
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// Get reads a whole object and its ETag. A missing key wraps ErrNotFound;
// other errors are classified (transient or not).
func Get(ctx context.Context, c Getter, bucket, key string) ([]byte, string, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		if awserr.IsNotFound(err) {
			return nil, "", fmt.Errorf("s3://%s/%s: %w", bucket, key, ErrNotFound)
		}
		return nil, "", awserr.Classify(fmt.Errorf("get s3://%s/%s: %w", bucket, key, err))
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if n := aws.ToInt64(out.ContentLength); n > 0 && n < 1<<30 {
		buf.Grow(int(n) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(out.Body); err != nil {
		return nil, "", taskerr.Transient(fmt.Errorf("read s3://%s/%s: %w", bucket, key, err))
	}
	return buf.Bytes(), aws.ToString(out.ETag), nil
}

// Put writes body if the object still has etag, or, with etag "", only if
// it does not exist yet. Losing that race wraps ErrConflict.
func Put(ctx context.Context, c Putter, bucket, key string, body []byte, etag string) error {
	in := &s3.PutObjectInput{
		Bucket:      aws.String(bucket),
		Key:         aws.String(key),
		Body:        bytes.NewReader(body),
		ContentType: aws.String("application/json"),
	}
	if etag != "" {
		in.IfMatch = aws.String(etag)
	} else {
		in.IfNoneMatch = aws.String("*")
	}
	return classifyPut(bucket, key, putErr(c.PutObject(ctx, in)))
}

// PutAlways writes body whatever is there.
func PutAlways(ctx context.Context, c Putter, bucket, key string, body []byte) error {
	_, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body), ContentType: aws.String("application/json"),
	})
	return classifyPut(bucket, key, err)
}

// Delete removes an object (a missing one is no error, as in S3).
func Delete(ctx context.Context, c API, bucket, key string) error {
	_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil && !awserr.IsNotFound(err) {
		return awserr.Classify(fmt.Errorf("delete s3://%s/%s: %w", bucket, key, err))
	}
	return nil
}

// List returns the keys under prefix, in S3's (lexical) order, at most max
// of them.
func List(ctx context.Context, c API, bucket, prefix string, max int) ([]string, error) {
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	var keys []string
	for p.HasMorePages() && len(keys) < max {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, awserr.Classify(fmt.Errorf("list s3://%s/%s: %w", bucket, prefix, err))
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	if len(keys) > max {
		keys = keys[:max]
	}
	return keys, nil
}

// IsConflict reports whether err is a lost conditional write: 412
// PreconditionFailed, or 409 ConditionalRequestConflict (two conditional
// writers at the same moment).
func IsConflict(err error) bool {
	if errors.Is(err, ErrConflict) {
		return true
	}
	switch awserr.Code(err) {
	case "PreconditionFailed", "ConditionalRequestConflict":
		return true
	}
	s := awserr.HTTPStatus(err)
	return s == 412 || s == 409
}

func putErr(_ *s3.PutObjectOutput, err error) error { return err }

func classifyPut(bucket, key string, err error) error {
	switch {
	case err == nil:
		return nil
	case IsConflict(err):
		return fmt.Errorf("put s3://%s/%s: %w", bucket, key, ErrConflict)
	}
	return awserr.Classify(fmt.Errorf("put s3://%s/%s: %w", bucket, key, err))
}
