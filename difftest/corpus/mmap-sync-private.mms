# MAP_SYNC only means something with MAP_SHARED_VALIDATE.
a = mmap 0 1p rw private|anonymous|sync
mmap 0 1p rw shared_validate|anonymous|sync
