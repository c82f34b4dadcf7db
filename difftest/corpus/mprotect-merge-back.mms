# Changing the middle back merges the three VMAs again.
a = mmap 0 3p rw private|anonymous
mprotect $a+1p 1p r
maps
mprotect $a+1p 1p rw       => ok
maps
