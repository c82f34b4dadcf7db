# A length that wraps to 0 when rounded up to pages.
mmap 0 -1 rw private|anonymous                      => ENOMEM
mmap 0 -100 rw private|anonymous                    => ENOMEM
