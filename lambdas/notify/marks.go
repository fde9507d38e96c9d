package notify

import (
	"bytes"
	"context"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"sshguard-unban/shared/awserr"
)

// S3API is the part of the S3 client the marks use.
type S3API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// S3Marks keeps marks as small objects in the ban-list bucket (a lifecycle
// rule expires them).
type S3Marks struct {
	Client S3API
	Bucket string
}

// Get reads a mark.
func (m S3Marks) Get(ctx context.Context, key string) ([]byte, bool, error) {
	out, err := m.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String(key)})
	if awserr.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, 64<<10))
	return b, err == nil, err
}

// Put writes a mark.
func (m S3Marks) Put(ctx context.Context, key string, value []byte) error {
	_, err := m.Client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(m.Bucket),
		Key:         aws.String(key),
		Body:        bytes.NewReader(value),
		ContentType: aws.String("application/json"),
	})
	return err
}
