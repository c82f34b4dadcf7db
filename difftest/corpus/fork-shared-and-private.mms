s1 = mmap 0 1p rw shared|anonymous
p1 = mmap 0 1p rw private|anonymous
fork {
  write $s1 1 0x5
  write $p1 1 0x6
}
read $s1 1
read $p1 1
