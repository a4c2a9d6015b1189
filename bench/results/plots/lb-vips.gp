set terminal pngcairo noenhanced size 960,600
set output 'lb-vips.png'
set title 'sluice-bench lb: ns/packet against vips'
set xlabel 'vips'
set ylabel 'ns/packet (median, bars q1-q3)'
set key below
set grid
set yrange [0:*]
set logscale x
set y2label 'map memory (MiB)'
set y2tics
set y2range [0:*]
$series0 << EOD
1 870 823 880
1000 866 851 922
EOD
$series1 << EOD
1 177 176 182
1000 189 188 197
EOD
$series2 << EOD
1 123 119 127
1000 133 126 134
EOD
$series3 << EOD
1 903 893 913
1000 868 856 979
EOD
$series4 << EOD
1 197 191 200
1000 197 195 200
EOD
$series5 << EOD
1 135 131 136
1000 126 125 126
EOD
$floor << EOD
1 61
1000 62
EOD
$memory << EOD
1 58.50553894
1000 58.58929443
EOD
plot $series0 using 1:2:3:4 with yerrorlines lw 2 title 'ipv4 new flow (Maglev + insert)', \
     $series1 using 1:2:3:4 with yerrorlines lw 2 title 'ipv4 established (connection hit)', \
     $series2 using 1:2:3:4 with yerrorlines lw 2 title 'ipv4 not a VIP', \
     $series3 using 1:2:3:4 with yerrorlines lw 2 title 'ipv6 new flow (Maglev + insert)', \
     $series4 using 1:2:3:4 with yerrorlines lw 2 title 'ipv6 established (connection hit)', \
     $series5 using 1:2:3:4 with yerrorlines lw 2 title 'ipv6 not a VIP', \
     $floor using 1:2 with lines dt 2 lc 'black' title 'floor: harness + XDP_DROP', \
     $memory using 1:2 axes x1y2 with linespoints dt 4 lc 'gray40' title 'map memory (right axis)'
