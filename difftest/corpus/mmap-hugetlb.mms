mmap 0 2m rw private|anonymous|hugetlb
